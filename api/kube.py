"""A small, read-only Kubernetes access layer for the observe routes (logs,
metrics, events), built from `settings.engine.kubeconfig`.

Why not the `kubernetes` package's client for the requests themselves: its calls
block, and a followed log or a watch would hold one worker thread for as long as
a user keeps a log stream open (anyio's default pool has 40 threads, shared with
every database call). So the kubeconfig is read with the `kubernetes` package
(every auth flavour: client certificates, tokens, exec plugins) once, in a worker
thread, and the requests go through one `httpx.AsyncClient` per event loop:
non-blocking, and a stream costs a socket and a coroutine, not a thread.

Responses are decoded into the few msgspec Structs below (only the fields the
routes use). Errors:
  KubeUnavailable   the API server cannot be reached (or answers 502/503/504):
                    routes answer 503
  KubeNotFound      404 (a pod that is gone, an API group that is not served)
  KubeError         any other refusal (RBAC, bad request...)

Pure helpers for the formats Kubernetes uses: RFC 3339 timestamps with up to
nanosecond precision (`parse_time_ns`, `format_time_ns`), resource quantities
(`parse_quantity`, `format_cpu`, `format_memory`).
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import re
import ssl
import threading
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import httpx
import msgspec

T = TypeVar("T")

REQUEST_TIMEOUT_S = 10.0
# A followed log of a quiet pod sends nothing for hours; a read that long stalls on
# a half-open connection would never notice. Callers re-open after this (resuming
# from their cursor), which costs one request per idle stream per period.
STREAM_IDLE_TIMEOUT_S = 300.0
WATCH_TIMEOUT_S = 240  # the API server ends a watch after this; callers re-watch
MAX_LINE_BYTES = 64 * 1024  # longer log lines are cut (a stream's memory is bounded)


# --- errors ---------------------------------------------------------------------


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


def _error(status: int, body: bytes) -> KubeError:
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


# --- time and quantity formats ----------------------------------------------------


_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})")


@functools.lru_cache(maxsize=4096)
def _epoch_of(day: str, hh: str, mm: str, ss: str, tz: str) -> int:
    year, month, dom = (int(x) for x in day.split("-"))
    seconds = calendar.timegm((year, month, dom, int(hh), int(mm), int(ss), 0, 0, 0))
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        seconds -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return seconds


def parse_time_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time (any fraction up to 9 digits), or None."""
    m = _TIME.fullmatch(text)
    if m is None:
        return None
    day, hh, mm, ss, frac, tz = m.groups()
    try:
        seconds = _epoch_of(day, hh, mm, ss, tz)
    except ValueError:
        return None
    return seconds * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)


@functools.lru_cache(maxsize=8192)  # every stream of a service formats the same times
def format_time_ns(ns: int, *, fraction: bool = True) -> str:
    """RFC 3339 in UTC with exactly nine fraction digits (or none: whole seconds, floored)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{rest:09d}Z" if fraction else f"{base}Z"


_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)")
_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes resource quantity ("15m", "1234567n", "32Mi", "1.5", "1e3") in base units."""
    m = _QUANTITY.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    number, exponent, suffix = m.groups()
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from None
    if exponent:
        return value * (Decimal(10) ** int(exponent[1:]))
    return value * _SUFFIX[suffix or ""]


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_cpu(cores: Decimal) -> str:
    """CPU in whole millicores, as the spec shows it: "150m"."""
    return f"{_round(cores * 1000)}m"


def format_memory(size: Decimal) -> str:
    """Memory in whole mebibytes ("256Mi", "0Mi"); below 1 MiB in kibibytes ("512Ki")."""
    if 0 < size < 2**20:
        return f"{_round(size / 1024)}Ki"
    return f"{_round(size / 2**20)}Mi"


# --- the client -------------------------------------------------------------------


class _Conn(msgspec.Struct):
    host: str
    ssl_context: ssl.SSLContext
    server_name: str | None
    configuration: Any  # kubernetes.client.Configuration (token refresh hooks live there)


def _load(kubeconfig: Path | None) -> _Conn:
    """Reads the kubeconfig (blocking: file IO, maybe an exec plugin). In a worker thread."""
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        if kubeconfig is not None and kubeconfig.exists():
            config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg, persist_config=False)
        elif kubeconfig is None:
            config.load_incluster_config(client_configuration=cfg)
        else:
            raise KubeUnavailable(0, "NoKubeconfig", f"no kubeconfig at {kubeconfig}")
    except KubeUnavailable:
        raise
    except Exception as exc:  # the kubernetes package raises many kinds here
        raise KubeUnavailable(0, "BadKubeconfig", f"cannot use the kubeconfig: {type(exc).__name__}") from None
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return _Conn(host=cfg.host.rstrip("/"), ssl_context=ctx, server_name=cfg.tls_server_name, configuration=cfg)


async def _lines(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body split on b"\\n" only (a log line may hold a bare \\r), each line at most MAX_LINE_BYTES."""
    buffer = b""
    async for chunk in response.aiter_raw():
        buffer += chunk
        while True:
            cut = buffer.find(b"\n")
            if cut < 0:
                if len(buffer) > MAX_LINE_BYTES:
                    yield buffer[:MAX_LINE_BYTES]
                    buffer = b""
                break
            line, buffer = buffer[:cut], buffer[cut + 1 :]
            yield line[:MAX_LINE_BYTES]
    if buffer:
        yield buffer[:MAX_LINE_BYTES]


class Kube:
    """Read access to one cluster. Safe to share between requests and event loops."""

    def __init__(self, kubeconfig: Path | None, *, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.kubeconfig = kubeconfig
        self.timeout = timeout
        self._conn: _Conn | None = None
        self._load_lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    # --- plumbing ------------------------------------------------------------

    def _load_once(self) -> _Conn:
        with self._load_lock:
            if self._conn is None:
                self._conn = _load(self.kubeconfig)
            return self._conn

    async def _connection(self) -> _Conn:
        if self._conn is not None:
            return self._conn
        return await anyio.to_thread.run_sync(self._load_once)

    async def _client(self) -> tuple[_Conn, httpx.AsyncClient]:
        conn = await self._connection()
        loop = asyncio.get_running_loop()
        http = self._clients.get(loop)
        if http is None:
            http = httpx.AsyncClient(
                base_url=conn.host,
                verify=conn.ssl_context,
                timeout=self.timeout,
                # Each followed log or watch holds a connection: no pool ceiling.
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
                trust_env=False,
            )
            self._clients[loop] = http
        return conn, http

    async def _headers(self, conn: _Conn) -> dict[str, str]:
        cfg = conn.configuration
        if cfg.refresh_api_key_hook is not None:  # exec plugins / expiring tokens
            await anyio.to_thread.run_sync(cfg.refresh_api_key_hook, cfg)
        token = cfg.get_api_key_with_prefix("authorization")
        return {"Authorization": token, "Accept": "application/json"} if token else {"Accept": "application/json"}

    async def aclose(self) -> None:
        """Closes this event loop's connections (call from the app's shutdown)."""
        http = self._clients.pop(asyncio.get_running_loop(), None)
        if http is not None:
            await http.aclose()

    async def _get(self, path: str, params: dict[str, Any], type: type[T]) -> T:
        conn, http = await self._client()
        extensions = {"sni_hostname": conn.server_name} if conn.server_name else None
        try:
            response = await http.get(path, params=params, headers=await self._headers(conn), extensions=extensions)
        except httpx.TransportError as exc:
            raise KubeUnavailable(0, type_name(exc), f"cluster unreachable: {type_name(exc)}") from None
        if response.status_code >= 400:
            raise _error(response.status_code, response.content)
        if type is bytes:
            return response.content  # type: ignore[return-value]
        try:
            return msgspec.json.decode(response.content, type=type)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise KubeError(response.status_code, "BadResponse", f"unexpected answer from the cluster: {exc}") from None

    @asynccontextmanager
    async def _stream(
        self, path: str, params: dict[str, Any], *, idle_timeout: float | None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        conn, http = await self._client()
        request = http.build_request(
            "GET",
            path,
            params=params,
            headers=await self._headers(conn),
            timeout=httpx.Timeout(self.timeout, read=idle_timeout),
            extensions={"sni_hostname": conn.server_name} if conn.server_name else None,
        )
        try:
            response = await http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise KubeUnavailable(0, type_name(exc), f"cluster unreachable: {type_name(exc)}") from None
        try:
            if response.status_code >= 400:
                raise _error(response.status_code, await response.aread())
            yield _lines(response)
        except httpx.TransportError as exc:  # mid-stream: a dropped connection or an idle timeout
            raise KubeUnavailable(0, type_name(exc), f"stream interrupted: {type_name(exc)}") from None
        finally:
            await response.aclose()

    # --- reads ---------------------------------------------------------------

    async def list_pods(self, namespace: str, selector: str) -> PodList:
        return await self._get(f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": selector}, PodList)

    def watch_pods(
        self, namespace: str, selector: str, resource_version: str
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Raw watch lines (decode with `decode_watch_event`); the server ends it after WATCH_TIMEOUT_S."""
        params = {
            "labelSelector": selector,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_S),
        }
        return self._stream(f"/api/v1/namespaces/{namespace}/pods", params, idle_timeout=WATCH_TIMEOUT_S + self.timeout)

    @staticmethod
    def _log_params(
        container: str, *, tail: int | None, since_time: str | None, timestamps: bool, limit_bytes: int | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"container": container, "timestamps": "true" if timestamps else "false"}
        if tail is not None:
            params["tailLines"] = str(tail)
        if since_time is not None:
            params["sinceTime"] = since_time
        if limit_bytes is not None:
            params["limitBytes"] = str(limit_bytes)
        return params

    async def read_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        tail: int | None = None,
        since_time: str | None = None,
        timestamps: bool = True,
        limit_bytes: int | None = None,
    ) -> bytes:
        params = self._log_params(
            container, tail=tail, since_time=since_time, timestamps=timestamps, limit_bytes=limit_bytes
        )
        return await self._get(f"/api/v1/namespaces/{namespace}/pods/{pod}/log", params, bytes)

    def follow_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        tail: int | None = None,
        since_time: str | None = None,
        timestamps: bool = True,
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """`async with kube.follow_log(...) as lines: async for line in lines` until the container stops."""
        params = self._log_params(container, tail=tail, since_time=since_time, timestamps=timestamps, limit_bytes=None)
        params["follow"] = "true"
        return self._stream(
            f"/api/v1/namespaces/{namespace}/pods/{pod}/log", params, idle_timeout=STREAM_IDLE_TIMEOUT_S
        )

    async def list_events(self, namespace: str) -> EventList:
        return await self._get(f"/api/v1/namespaces/{namespace}/events", {}, EventList)

    async def pod_metrics(self, namespace: str, selector: str) -> PodMetricsList:
        """metrics.k8s.io PodMetrics; KubeNotFound/KubeUnavailable when the cluster has no metrics API."""
        return await self._get(
            f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods", {"labelSelector": selector}, PodMetricsList
        )


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


def type_name(exc: BaseException) -> str:
    return type(exc).__name__
