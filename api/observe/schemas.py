"""Response bodies of the observe routes (logs, metrics, events, live progress),
named as the contract (docs/api.md) names their fields."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta


class LogsResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """GET /api/deployments/{name}/logs. `statusMessage` says why `logs` is empty
    or partial (no pods yet, a container still starting, ...)."""

    logs: str
    statusMessage: str | None = None


class MetricPoint(msgspec.Struct, frozen=True, omit_defaults=True):
    """One measurement of a service (a mean of several, past 6 h or in a long window)."""

    time: str
    cpuMillicores: float
    memoryBytes: int
    # Nothing was measured between the previous point and this one (the deployment was
    # not Ready, or sampling stopped): a chart breaks its line here.
    gapBefore: bool = False


class ServiceSeries(msgspec.Struct, frozen=True):
    service: str
    points: list[MetricPoint]


class MetricMarker(msgspec.Struct, frozen=True, omit_defaults=True):
    """Something a chart marks: `restart` (containers of a service restarted; `count`
    restarts since the point before) or `revision` (an operation that changed the
    deployment; `label` is its message)."""

    time: str
    kind: str
    label: str
    service: str | None = None
    count: int | None = None


class MetricsResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """GET /api/deployments/{name}/metrics: usage summed over the service's pods.
    With `?window=`, also the stored samples of every service over that window."""

    cpuUsage: str
    memoryUsage: str
    timestamp: str
    cpuMillicores: int
    memoryBytes: int
    pods: int  # pods measured
    statusMessage: str | None = None
    window: str | None = None  # "1h" | "6h" | "24h", only when asked for
    windowStart: str | None = None
    windowEnd: str | None = None
    intervalSeconds: float | None = None  # how often the service samples
    series: list[ServiceSeries] | None = None  # one per service measured in the window
    markers: list[MetricMarker] | None = None  # oldest first


class EventObject(msgspec.Struct, frozen=True):
    kind: str
    name: str


class EventOut(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    reason: str
    message: str
    object: EventObject
    count: int
    time: str | None = None
    source: str | None = None


class EventsResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """GET /api/deployments/{name}/events, newest first."""

    events: list[EventOut]
    statusMessage: str | None = None


# --- SSE payloads (the `data:` of each event) ------------------------------------

# An event's `data`: one of the JSON payloads below.
EventData = Annotated[str, Meta(extra_json_schema={"contentMediaType": "application/json"})]


class LogStreamEvent(msgspec.Struct, frozen=True):
    """One event of the log stream as an EventSource reads it: `data` is a
    LogLineEvent (`message`, with the resumable cursor as `id`), PodEvent (`pod`),
    StatusEvent (`status`) or EndEvent (`end`)."""

    event: Literal["message", "pod", "status", "end"]
    data: EventData
    id: str = ""


class LogLineEvent(msgspec.Struct, frozen=True):
    """A log line (SSE event without a name, so EventSource.onmessage gets it)."""

    pod: str
    container: str
    time: str
    line: str


class PodEvent(msgspec.Struct, frozen=True):
    """`event: pod`: the stream started (`added`) or stopped (`removed`) following a pod."""

    pod: str
    state: str


class StatusEvent(msgspec.Struct, frozen=True):
    """`event: status`: why no lines arrive (no pods yet, cluster unreachable, ...)."""

    message: str


class EndEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """`event: end`: the stream is over (the operation finished, the deployment is gone)."""

    status: str
    message: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
