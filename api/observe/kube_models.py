"""The Kubernetes objects the observe routes read, as msgspec Structs (only the
fields used), and the API server's errors:

  KubeUnavailable   the API server cannot be reached (or answers 502/503/504):
                    routes answer 503
  KubeNotFound      404 (a pod that is gone, an API group that is not served)
  KubeError         any other refusal (RBAC, bad request...)
"""

from __future__ import annotations

import msgspec


class KubeError(Exception):
    """The API server refused a request (`status` is its HTTP status, 0 if none)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class KubeUnavailable(KubeError):
    """The cluster cannot be reached: no kubeconfig, connection refused, timeout, 502-504."""


class KubeNotFound(KubeError):
    pass


class Status(msgspec.Struct):
    message: str = ""
    reason: str = ""
    code: int = 0


def error_from_response(status: int, body: bytes) -> KubeError:
    try:
        st = msgspec.json.decode(body, type=Status)
        message, reason = st.message, st.reason
    except (msgspec.DecodeError, msgspec.ValidationError):
        message, reason = body.decode("utf-8", "replace").strip()[:300], ""
    message = message or f"HTTP {status}"
    if status == 404:
        return KubeNotFound(status, reason or "NotFound", message)
    if status in (502, 503, 504):
        return KubeUnavailable(status, reason or "ServiceUnavailable", message)
    return KubeError(status, reason, message)


# --- the objects we read ------------------------------------------------------------


class _K8s(msgspec.Struct, rename="camel", omit_defaults=True):
    pass


class ObjectMeta(_K8s):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class ListMeta(_K8s):
    resource_version: str = ""


class Container(_K8s):
    name: str


class PodSpec(_K8s):
    containers: list[Container] = []
    node_name: str | None = None


class StateRunning(_K8s):
    started_at: str | None = None


class StateWaiting(_K8s):
    reason: str = ""
    message: str = ""


class StateTerminated(_K8s):
    reason: str = ""
    exit_code: int = 0
    started_at: str | None = None
    finished_at: str | None = None


class ContainerState(_K8s):
    running: StateRunning | None = None
    waiting: StateWaiting | None = None
    terminated: StateTerminated | None = None


class ContainerStatus(_K8s):
    name: str
    ready: bool = False
    restart_count: int = 0
    state: ContainerState = msgspec.field(default_factory=ContainerState)


class PodStatus(_K8s):
    phase: str = ""
    reason: str = ""
    message: str = ""
    container_statuses: list[ContainerStatus] = []


class Pod(_K8s):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)

    def container_names(self) -> list[str]:
        return [c.name for c in self.spec.containers]

    def has_log(self, container: str) -> bool:
        """Whether the container ever started, so the kubelet has a log to serve."""
        for cs in self.status.container_statuses:
            if cs.name == container:
                return cs.state.running is not None or cs.state.terminated is not None or cs.restart_count > 0
        return False

    def waiting_reason(self) -> str:
        for cs in self.status.container_statuses:
            if cs.state.waiting is not None and cs.state.waiting.reason:
                return cs.state.waiting.reason
        return self.status.reason or self.status.phase or "Pending"


class PodList(_K8s):
    metadata: ListMeta = msgspec.field(default_factory=ListMeta)
    items: list[Pod] = []


class WatchEvent(msgspec.Struct):
    type: str
    object: msgspec.Raw


class ObjectReference(_K8s):
    kind: str = ""
    name: str = ""
    namespace: str = ""


class EventSeries(_K8s):
    count: int = 0
    last_observed_time: str | None = None


class EventSource(_K8s):
    component: str = ""


class Event(_K8s):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    involved_object: ObjectReference = msgspec.field(default_factory=ObjectReference)
    reason: str = ""
    message: str = ""
    type: str = ""
    count: int = 0
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    event_time: str | None = None
    series: EventSeries | None = None
    source: EventSource | None = None
    reporting_component: str = ""

    @property
    def time(self) -> str | None:
        """When it last happened, whichever API (core or events.k8s.io) recorded it."""
        series_time = self.series.last_observed_time if self.series else None
        return (
            series_time
            or self.last_timestamp
            or self.event_time
            or self.first_timestamp
            or self.metadata.creation_timestamp
        )

    @property
    def occurrences(self) -> int:
        if self.series and self.series.count:
            return self.series.count
        return self.count or 1


class EventList(_K8s):
    metadata: ListMeta = msgspec.field(default_factory=ListMeta)
    items: list[Event] = []


class ContainerMetrics(_K8s):
    name: str
    usage: dict[str, str] = {}


class PodMetrics(_K8s):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    timestamp: str | None = None
    window: str | None = None
    containers: list[ContainerMetrics] = []


class PodMetricsList(_K8s):
    items: list[PodMetrics] = []


def decode_watch_event(line: bytes) -> tuple[str, Pod | Status | None]:
    """("ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK", Pod) or ("ERROR", status)."""
    event = msgspec.json.decode(line, type=WatchEvent)
    if event.type == "ERROR":
        return event.type, msgspec.json.decode(event.object, type=Status)
    if event.type == "BOOKMARK":  # only metadata.resourceVersion means anything ("containers": null)
        return event.type, Pod(metadata=msgspec.json.decode(event.object, type=_Bookmark).metadata)
    return event.type, msgspec.json.decode(event.object, type=Pod)


class _Bookmark(_K8s):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
