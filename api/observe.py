"""Observe a deployment: logs (tail, follow, SSE), metrics, Kubernetes events and
the live progress of an operation.

    GET /api/deployments/{name}/logs?service=&tail=100&follow=false
    GET /api/deployments/{name}/logs/stream?service=&tail=100      text/event-stream
    GET /api/deployments/{name}/metrics?service=
    GET /api/deployments/{name}/events?limit=200
    GET /api/operations/{id}/events                                 text/event-stream

Logs, metrics and events read the Kubernetes API directly (`api.kube`), for the
pods that carry the service's selector labels (`programs.deployment.label_selector`)
in the deployment's namespace `sd-<name>`. Every route needs `deployments:read`
and a deployment the caller can see (404 otherwise, like every deployment route).
`service` defaults to the template's first service; an unknown one is 400 and
names the valid ones. A cluster that cannot be reached is 503. A deployment with
no pods (not created yet, failed, being deleted) answers with empty logs/zero
usage and a `statusMessage`, never an error.

Logs
----
All containers of all pods of the service, merged in time order (lines are read
with `timestamps=true`); prefixed with `[pod]` (`[pod/container]` for pods with
several containers) when more than one container contributes. `tail` is the
number of lines of the merged output, 0..MAX_TAIL (5000); more is 400.
`follow=true` answers `text/plain` and keeps streaming lines (following new pods
as they replace old ones) until the client goes away.

The log stream (SSE)
--------------------
One event per line, `data: {"pod","container","time","line"}` with an `id` that
is the stream's cursor: for every container being followed, the RFC 3339 (ns)
time of the last line delivered and its ordinal among lines with that same time:

    id: 1;nginx-7d9c-x2x4z/nginx@2025-01-02T03:04:05.123456789Z#0

A client reconnecting with `Last-Event-ID` (EventSource does so by itself; the
`lastEventId` query parameter works too) gets exactly the lines after that cursor:
each container's log is re-read from `sinceTime` (whole seconds, so never later
than the cursor) and lines up to the cursor are skipped, so there is neither a
gap nor a repeat, for each pod independently (one timestamp for all pods could
not promise that: lines of two pods arrive interleaved). Pods that started after
the cursor are read from their start. Other events: `event: pod` when the stream
starts/stops following a pod (restart, config update, rollout: the stream follows
the new pods by watching the pods of the service), `event: status` when nothing
can be followed (no pods yet, cluster unreachable: it retries), `event: end`
when the deployment is gone. A comment line is sent every HEARTBEAT_S while idle.

The streams of one service share one `LogHub` per process (one pod watch, one
followed log per container, the last HUB_LINES lines of each kept in memory), so
a thousand clients on a deployment cost the cluster what one does. When a client
disconnects its subscription is closed at once (the generator's `finally` and the
response's background task both do it); when the last client of a hub leaves,
the hub cancels its tasks, which closes its watch and log connections.
bench/log_streams.py measures how many streams a process holds.

Operation progress (SSE)
------------------------
`/api/operations/{id}/events` replays the progress the operation recorded, then
the engine's events as the runner publishes them (and, for an operation run by
another process, as the database receives them), then `event: end` with the
outcome. Event names are the progress item types (`step`, `done`, `diagnostic`,
`summary`); ids are the engine's sequence numbers, so `Last-Event-ID` resumes.
The events carry what the engine reports with `show_secrets=False`: secret
values are masked by Pulumi and env values never appear.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import functools
import logging
import queue
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, NamedTuple

import anyio.to_thread
import msgspec
from litestar import Litestar, MediaType, Request, Response, get
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, QueryParameter
from litestar.response import Stream
from sqlalchemy.orm import Session, sessionmaker

from api.auth import CurrentPrincipal
from api.errors import ApiError, ErrorBody, not_found
from api.kube import (
    Kube,
    KubeError,
    KubeNotFound,
    KubeUnavailable,
    Pod,
    PodList,
    PodMetricsList,
    Status,
    decode_watch_event,
    format_cpu,
    format_memory,
    format_time_ns,
    parse_quantity,
    parse_time_ns,
)
from api.observe_schemas import (
    EndEvent,
    EventObject,
    EventOut,
    EventsResponse,
    LogLineEvent,
    LogsResponse,
    MetricsResponse,
    PodEvent,
    StatusEvent,
)
from api.principal import READ, Principal
from api.tenancy import get_visible_deployment
from persistence import operations as ops
from persistence.models import Deployment
from programs.labels import LABEL_DEPLOYMENT, label_selector
from programs.spec import DeploymentSpec, namespace_for
from programs.templates import load_catalog
from stacks.settings import Settings

log = logging.getLogger("shipstack.api.observe")

DEFAULT_TAIL = 100
MAX_TAIL = 5000
DEFAULT_EVENTS = 200
MAX_EVENTS = 1000
# One container's part of a tail read: a bound on memory when lines are huge.
TAIL_LIMIT_BYTES = 8 * 1024 * 1024
HEARTBEAT_S = 15.0
# How often an open stream checks that the deployment still exists (and is visible).
DEPLOYMENT_CHECK_S = 30.0
# After a pod is deleted, how long its log stream may still deliver its last lines.
POD_GONE_GRACE_S = 2.0
RETRY_MAX_S = 10.0
# A finished container is re-read when its pod changes, or at the latest after this.
RESTART_POLL_S = 30.0
HUB_LINES = 1000  # lines kept per container for the streams sharing it (a client further behind reads the cluster)
# An ended container's last lines stay this long for the streams still taking them.
ENDED_KEEP_S = 30.0
BATCH = 200  # lines written to the client in one chunk
OP_POLL_S = 0.2  # live queue poll of the operation stream
OP_DB_POLL_S = 2.0  # database poll (operations run by another process)
MAX_STREAMS = 2000  # open log streams per process; more answer 503 (see bench/log_streams.py)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

_open_streams = 0


# --- access -----------------------------------------------------------------------


def _need(principal: Principal, scope: str) -> None:
    if not principal.has_scope(scope):
        raise ApiError(403, "forbidden", f"This credential lacks the {scope} scope")


def _kube(request: Request[Any, Any, Any]) -> Kube:
    """The app's Kubernetes client (`app.state.kube`, created on first use)."""
    state: State = request.app.state
    kube: Kube | None = state.get("kube")
    if kube is None:
        settings: Settings = state.settings
        kube = Kube(settings.kubeconfig)
        state.kube = kube
    return kube


async def close_kube(app: Litestar) -> None:
    """Shutdown hook: closes the cluster connections of the app's event loop."""
    kube: Kube | None = app.state.get("kube")
    if kube is not None:
        await kube.aclose()


def _cluster_error(exc: KubeError) -> ApiError:
    if isinstance(exc, KubeUnavailable):
        return ApiError(503, "cluster_unavailable", f"The Kubernetes cluster is unreachable: {exc.message}")
    return ApiError(500, "cluster_error", f"The Kubernetes API refused the request: {exc.message}")


@dataclass(frozen=True)
class Target:
    """What a request observes: the deployment row's facts and the service's pods."""

    name: str
    namespace: str
    service: str | None
    selector: str
    status: str
    status_message: str | None

    def not_ready_note(self) -> str:
        what = f"service '{self.service}'" if self.service else f"deployment '{self.name}'"
        note = f"No pods of {what} are running; the deployment is {self.status}"
        if self.status_message:
            note += f": {_short(self.status_message)}"
        return note


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _services(row: Deployment) -> list[str]:
    template = load_catalog().get(row.template or "image")
    return [s.name for s in template.services] if template is not None else []


def _target_of(row: Deployment, settings: Settings, service: str | None) -> Target:
    services = _services(row)
    if service is not None and service not in services:
        listed = ", ".join(services) or "none known"
        raise ApiError(400, "unknown_service", f"Unknown service '{service}'; services of '{row.name}': {listed}")
    chosen = service or (services[0] if services else None)
    if chosen is not None:
        spec = DeploymentSpec(name=row.name, template=row.template or "image", base_domain=settings.base_domain)
        selector = label_selector(spec, chosen)
    else:  # a template no longer in the catalog: every pod of the deployment
        selector = f"{LABEL_DEPLOYMENT}={row.name}"
    message = row.last_error if row.status == "Error" else row.status_message
    return Target(
        name=row.name,
        namespace=namespace_for(row.name),
        service=chosen,
        selector=selector,
        status=row.status,
        status_message=message,
    )


async def _target(request: Request[Any, Any, Any], principal: Principal, name: str, service: str | None) -> Target:
    _need(principal, READ)
    state: State = request.app.state
    sessions: sessionmaker[Session] = state.session_factory
    settings: Settings = state.settings

    def read() -> Target:
        with sessions() as db:
            return _target_of(get_visible_deployment(db, principal, name), settings, service or None)

    return await anyio.to_thread.run_sync(read)


async def _still_visible(request: Request[Any, Any, Any], principal: Principal, name: str) -> bool:
    sessions: sessionmaker[Session] = request.app.state.session_factory

    def check() -> bool:
        with sessions() as db:
            try:
                get_visible_deployment(db, principal, name)
            except ApiError:
                return False
            return True

    try:
        return await anyio.to_thread.run_sync(check)
    except Exception:  # a database hiccup must not end a stream
        log.warning("checking deployment %s for an open stream failed", name, exc_info=True)
        return True


# --- log lines, merging, cursors (pure) -------------------------------------------


class SourceKey(NamedTuple):
    pod: str
    container: str


class Position(NamedTuple):
    """A line's place in one container's log: its time (ns) and its ordinal among
    the lines that carry exactly that time (0 for the first)."""

    ts: int
    n: int


class LogLine(NamedTuple):
    source: SourceKey
    pos: Position
    time: str  # RFC 3339 with nanoseconds
    text: str


def split_timestamp(raw: bytes) -> tuple[int | None, str]:
    """A kubelet line read with `timestamps=true` -> (ns, text); (None, text) if it has no time."""
    head, _, rest = raw.partition(b" ")
    ts = parse_time_ns(head.decode("ascii", "replace"))
    if ts is None:
        return None, raw.decode("utf-8", "replace").rstrip("\r")
    return ts, rest.decode("utf-8", "replace").rstrip("\r")


class LineReader:
    """Numbers one container's lines (time, ordinal) and drops those at or before `after`.

    Re-reading a log from `sinceTime` (whole seconds) repeats the lines of that
    second that were already delivered; this skips exactly those.
    """

    def __init__(self, source: SourceKey, after: Position | None) -> None:
        self.source = source
        self.after = after
        self.last: Position | None = None

    def accept(self, raw: bytes) -> LogLine | None:
        ts, text = split_timestamp(raw)
        last = self.last
        if ts is None:  # a continuation without a time: right after the previous line
            pos = Position(last.ts, last.n + 1) if last else Position(0, 0)
        elif last is not None and ts == last.ts:
            pos = Position(ts, last.n + 1)
        else:
            pos = Position(ts, 0)
        self.last = pos
        if self.after is not None and pos <= self.after:
            return None
        return LogLine(self.source, pos, format_time_ns(pos.ts), text)


def merge_lines(per_source: Iterable[list[LogLine]], tail: int | None = None) -> list[LogLine]:
    """Lines of several containers in time order (ties: by source, then ordinal); the last `tail`."""
    merged = sorted((line for lines in per_source for line in lines), key=lambda x: (x.pos.ts, x.source, x.pos.n))
    if tail is not None:
        merged = merged[-tail:] if tail > 0 else []
    return merged


def source_labels(sources: Iterable[SourceKey]) -> dict[SourceKey, str]:
    """How lines are prefixed: the pod name, or pod/container for pods with several containers."""
    sources = list(sources)
    per_pod: dict[str, int] = {}
    for s in sources:
        per_pod[s.pod] = per_pod.get(s.pod, 0) + 1
    return {s: s.pod if per_pod[s.pod] == 1 else f"{s.pod}/{s.container}" for s in sources}


def render_text(lines: Iterable[LogLine], labels: Mapping[SourceKey, str] | None) -> str:
    """Plain text, one line each, prefixed with `[label] ` when `labels` is given."""
    if labels is None:
        return "".join(f"{line.text}\n" for line in lines)
    return "".join(f"[{labels.get(line.source, line.source.pod)}] {line.text}\n" for line in lines)


CURSOR_VERSION = "1"
_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_CURSOR_PART = re.compile(r"([^/@#,;]+)/([^/@#,;]+)@([^#,;]+)#(\d{1,9})")


def encode_cursor(positions: Mapping[SourceKey, Position]) -> str:
    """The SSE id: `1;pod/container@<RFC3339 ns>#<ordinal>,...` (sorted by pod and container)."""
    parts = [f"{k.pod}/{k.container}@{format_time_ns(p.ts)}#{p.n}" for k, p in sorted(positions.items())]
    return f"{CURSOR_VERSION};{','.join(parts)}"


def decode_cursor(text: str) -> dict[SourceKey, Position] | None:
    """The positions of an id made by `encode_cursor`, or None when it is not one."""
    version, sep, body = text.strip().partition(";")
    if version != CURSOR_VERSION or not sep:
        return None
    positions: dict[SourceKey, Position] = {}
    for part in filter(None, body.split(",")):
        m = _CURSOR_PART.fullmatch(part)
        if m is None:
            return None
        pod, container, when, n = m.groups()
        ts = parse_time_ns(when)
        if ts is None or not _DNS_NAME.fullmatch(pod) or not _DNS_NAME.fullmatch(container):
            return None
        positions[SourceKey(pod, container)] = Position(ts, int(n))
    return positions


def sse(data: bytes, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One SSE event; `data` must hold no newline (msgspec JSON never does)."""
    head = b""
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\n"
    if event is not None:
        head += b"event: " + event.encode() + b"\n"
    return head + b"data: " + data + b"\n\n"


HEARTBEAT = b": keep-alive\n\n"


def _tail_param(tail: int) -> int:
    if not 0 <= tail <= MAX_TAIL:
        raise ApiError(400, "invalid_input", f"tail must be between 0 and {MAX_TAIL}")
    return tail


# --- reading logs -------------------------------------------------------------------


def _sources(pods: Iterable[Pod]) -> tuple[list[SourceKey], list[str]]:
    """Containers that have a log, and notes on pods whose containers have none yet."""
    sources: list[SourceKey] = []
    notes: list[str] = []
    for pod in sorted(pods, key=lambda p: (p.metadata.creation_timestamp or "", p.metadata.name)):
        for container in pod.container_names():
            if pod.has_log(container):
                sources.append(SourceKey(pod.metadata.name, container))
            else:
                notes.append(f"pod {pod.metadata.name}: container {container} is {pod.waiting_reason()}")
    return sources, notes


async def _read_tails(
    kube: Kube, namespace: str, sources: list[SourceKey], tail: int
) -> tuple[list[list[LogLine]], list[str]]:
    """Each source's last `tail` lines (at least one, so its position is known)."""

    async def one(source: SourceKey) -> tuple[list[LogLine], str | None]:
        try:
            raw = await kube.read_log(
                namespace, source.pod, source.container, tail=max(tail, 1), limit_bytes=TAIL_LIMIT_BYTES
            )
        except KubeNotFound:
            return [], f"pod {source.pod} is gone"
        except KubeUnavailable:
            raise
        except KubeError as exc:  # e.g. 400 "container is waiting to start"
            return [], f"pod {source.pod}: {_short(exc.message, 200)}"
        reader = LineReader(source, None)
        lines = [line for chunk in raw.split(b"\n") if chunk and (line := reader.accept(chunk)) is not None]
        return lines, None

    results = await asyncio.gather(*(one(s) for s in sources))
    return [lines for lines, _ in results], [note for _, note in results if note]


# --- following logs ---------------------------------------------------------------
#
# Every open stream of one service (same namespace and selector) in this process
# shares one `LogHub`: one pod watch and one followed log per container, whatever
# the number of clients. A kubelet spends an inotify instance and the API server a
# proxied connection on every followed log, so per-client follows would cap the
# streams at what the node allows (128 inotify instances by default); shared, a
# service's streams cost its pods' follows once. The hub keeps the last lines of
# each container in memory; each client (`LogFollower`) keeps its own cursor and
# takes the lines after it from the hub, or first reads the part of the log the hub
# no longer (or never) held, so every client still gets every line exactly once.


class PodChange(NamedTuple):
    pod: str
    state: str  # "added" | "removed"


class SourceEnded(NamedTuple):
    source: SourceKey


class Notice(NamedTuple):
    message: str


Item = LogLine | PodChange | SourceEnded | Notice


@dataclass(eq=False)
class _HubSource:
    """One container's log as the hub follows it."""

    key: SourceKey
    since: str | None  # the pod's creation: where the log starts
    pos: Position | None  # the last line read: re-opens continue after it
    # `lines` holds every line after `after` (None: from the start of the log), in order.
    after: Position | None
    lines: list[LogLine] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    ended: bool = False


class LogHub:
    """The shared upstream of the streams of one service: a pod watch and a followed
    log per container. Lines go into a bounded buffer per container (HUB_LINES);
    subscribers are woken and take what they have not had yet."""

    def __init__(self, kube: Kube, namespace: str, selector: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.selector = selector
        self.pods: dict[str, Pod] = {}
        self.sources: dict[SourceKey, _HubSource] = {}
        self.subscribers: set[LogFollower] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handles: list[asyncio.TimerHandle] = []
        self._rv = ""
        self._hints: dict[SourceKey, Position] = {}
        self.closed = False

    # --- lifecycle ---------------------------------------------------------------

    def start(self, pods: list[Pod], resource_version: str, hints: Mapping[SourceKey, Position]) -> None:
        """Starts following `pods` (the first subscriber's listing); a container's log
        is followed from that subscriber's position in it, else from its start."""
        self._rv = resource_version
        self._hints = dict(hints)
        for pod in pods:
            self._pod_seen(pod)
        self._spawn(self._watch())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        _hubs.pop((asyncio.get_running_loop(), self.kube, self.namespace, self.selector), None)
        for handle in self._handles:
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    def unsubscribe(self, follower: LogFollower) -> None:
        self.subscribers.discard(follower)
        if not self.subscribers:
            self.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def task_count(self) -> int:
        return len(self._tasks)

    def _wake(self) -> None:
        for follower in self.subscribers:
            follower.wake.set()

    def _notice(self, message: str) -> None:
        for follower in self.subscribers:
            follower.control.append(Notice(message))
        self._wake()

    # --- pods ---------------------------------------------------------------------

    def _pod_seen(self, pod: Pod) -> None:
        name = pod.metadata.name
        self.pods[name] = pod
        added = False
        for container in pod.container_names():
            key = SourceKey(name, container)
            source = self.sources.get(key)
            if source is not None and not source.ended:
                source.changed.set()
                continue
            if not pod.has_log(container):
                continue
            created = parse_time_ns(pod.metadata.creation_timestamp or "")
            hint = self._hints.pop(key, None)
            if source is not None:  # the pod came back (a relist raced its deletion): go on after it
                hint = source.pos or hint
            source = _HubSource(
                key=key,
                since=format_time_ns(created, fraction=False) if created is not None else None,
                pos=hint,
                after=hint,
            )
            self.sources[key] = source
            source.task = self._spawn(self._follow(source))
            added = True
        if added:
            self._wake()

    def _pod_deleted(self, name: str) -> None:
        if self.pods.pop(name, None) is None:
            return
        loop = asyncio.get_running_loop()
        for source in [s for k, s in self.sources.items() if k.pod == name]:
            source.stopping = True
            source.changed.set()
            self._handles.append(loop.call_later(POD_GONE_GRACE_S, self._stop_source, source))
        self._wake()

    def _stop_source(self, source: _HubSource) -> None:
        if source.task is not None and not source.task.done():
            source.task.cancel()

    def _forget(self, source: _HubSource) -> None:
        """Drops an ended source once its last lines had time to reach the subscribers."""
        if self.sources.get(source.key) is source:
            del self.sources[source.key]
            self._wake()

    async def _watch(self) -> None:
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                async with self.kube.watch_pods(self.namespace, self.selector, self._rv) as lines:
                    async for raw in lines:
                        kind, obj = decode_watch_event(raw)
                        if isinstance(obj, Status):
                            if obj.code == 410:  # our resourceVersion is too old
                                await self._relist()
                                break
                            raise KubeError(obj.code, obj.reason, obj.message)
                        if obj is None:
                            continue
                        self._rv = obj.metadata.resource_version or self._rv
                        if kind == "DELETED":
                            self._pod_deleted(obj.metadata.name)
                        elif kind in ("ADDED", "MODIFIED"):
                            self._pod_seen(obj)
                if time.monotonic() - started > 5:  # the server ended a healthy watch: watch again
                    delay = 0.5
                    continue
            except asyncio.CancelledError:
                raise
            except KubeError as exc:
                if exc.status == 410:
                    with contextlib.suppress(KubeError):
                        await self._relist()
                    continue
                if isinstance(exc, KubeUnavailable):
                    self._notice(f"cluster unreachable, retrying: {exc.message}")
                else:
                    log.warning("watching pods of %s failed: %s", self.namespace, exc.message)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("undecodable watch event for %s: %s", self.namespace, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            with contextlib.suppress(KubeError):
                await self._relist()

    async def _relist(self) -> None:
        listing = await self.kube.list_pods(self.namespace, self.selector)
        self._rv = listing.metadata.resource_version
        present = {p.metadata.name for p in listing.items}
        for name in [n for n in self.pods if n not in present]:
            self._pod_deleted(name)
        for pod in listing.items:
            self._pod_seen(pod)

    # --- logs ---------------------------------------------------------------------

    def _append(self, source: _HubSource, line: LogLine) -> None:
        source.lines.append(line)
        if len(source.lines) > HUB_LINES * 3 // 2:  # trim in chunks: amortised O(1)
            cut = len(source.lines) - HUB_LINES
            source.after = source.lines[cut - 1].pos
            del source.lines[:cut]

    async def _follow(self, source: _HubSource) -> None:
        key = source.key
        delay = 0.5
        try:
            while True:
                reader = LineReader(key, source.pos)
                since = format_time_ns(source.pos.ts, fraction=False) if source.pos else source.since
                ended_normally = False
                source.changed.clear()
                try:
                    async with self.kube.follow_log(self.namespace, key.pod, key.container, since_time=since) as lines:
                        delay = 0.5
                        async for raw in lines:
                            line = reader.accept(raw)
                            if line is None:
                                continue
                            source.pos = line.pos
                            self._append(source, line)
                            self._wake()
                    ended_normally = True
                except KubeNotFound:
                    return  # the pod is gone
                except KubeUnavailable:
                    pass  # dropped connection or idle timeout: re-open after the last line
                except KubeError:
                    pass  # e.g. 400 while the container (re)starts
                if source.stopping or key.pod not in self.pods:
                    return
                if ended_normally:
                    # The container stopped: wait for its pod to change (a restart), or poll.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(RESTART_POLL_S):
                            await source.changed.wait()
                else:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
        except asyncio.CancelledError:
            if not source.stopping or self.closed:
                raise
        finally:
            if not self.closed:
                source.ended = True
                self._handles.append(asyncio.get_running_loop().call_later(ENDED_KEEP_S, self._forget, source))
                self._wake()


_hubs: dict[tuple[asyncio.AbstractEventLoop, Kube, str, str], LogHub] = {}


def open_hubs() -> int:
    """Shared upstreams (pod watch + followed logs) open in this process."""
    return len(_hubs)


class LogFollower:
    """One client's stream: the lines of every pod of a service after the client's
    cursor, as pods come and go, from the shared `LogHub`.

    `delivered` is the cursor the client has (the SSE id); `_read` runs ahead of
    it by at most the batch the consumer is writing. `close()` unsubscribes; the
    hub closes its watch and follows when its last subscriber leaves.
    """

    def __init__(self, kube: Kube, namespace: str, selector: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.selector = selector
        self.hub: LogHub | None = None
        self.wake = asyncio.Event()
        self.control: collections.deque[Item] = collections.deque(maxlen=100)
        self.delivered: dict[SourceKey, Position] = {}  # the cursor of what the client got (SSE id)
        self._read: dict[SourceKey, Position | None] = {}  # what was taken from the hub (None: nothing yet)
        self._finished: dict[SourceKey, Position | None] = {}  # ended sources this client had all of
        self._announced: set[str] = set()
        self.labels_seen: set[SourceKey] = set()
        self.closed = False
        self.notes: list[str] = []

    @property
    def pods(self) -> dict[str, Pod]:
        return self.hub.pods if self.hub is not None else {}

    async def start(self, *, tail: int, resume: Mapping[SourceKey, Position] | None) -> list[LogLine]:
        """Lists the pods (KubeError escapes: the route answers 503/500 before streaming),
        joins the hub, and returns the first lines: the merged tail, or none when resuming."""
        listing = await self.kube.list_pods(self.namespace, self.selector)
        pods = [p for p in listing.items if p.metadata.name]
        initial: list[LogLine] = []
        if resume is None:
            sources, self.notes = _sources(pods)
            per_source, notes = await _read_tails(self.kube, self.namespace, sources, tail)
            self.notes += notes
            for lines in per_source:
                if lines:
                    self.delivered[lines[-1].source] = lines[-1].pos
            initial = merge_lines(per_source, tail)
            self.labels_seen.update(line.source for line in initial)
        else:
            alive = {p.metadata.name for p in pods}
            self.delivered = {k: p for k, p in resume.items() if k.pod in alive}
        self._read = dict(self.delivered)
        self._announced = {p.metadata.name for p in pods}
        key = (asyncio.get_running_loop(), self.kube, self.namespace, self.selector)
        hub = _hubs.get(key)
        if hub is None or hub.closed:
            hub = _hubs[key] = LogHub(self.kube, self.namespace, self.selector)
            hub.start(pods, listing.metadata.resource_version, self.delivered)
        hub.subscribers.add(self)
        self.hub = hub
        self.wake.set()
        return initial

    def close(self) -> None:
        """Leaves the hub (which closes when nobody is left). Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.hub is not None:
            self.hub.unsubscribe(self)

    async def aclose(self) -> None:
        self.close()

    # --- what the consumer calls ------------------------------------------------

    async def next_batch(self, timeout: float) -> list[Item]:
        """Up to BATCH items, waiting at most `timeout` for the first ([] on timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self.wake.clear()
            batch = await self._collect()  # never under the timeout: it must not lose what it took
            if batch:
                self.wake.set()  # there may be more: the next call looks again at once
                return batch
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await self.wake.wait()
            except TimeoutError:
                return []

    def delivered_line(self, line: LogLine) -> str:
        """Records that `line` reached the client; returns the stream's cursor (the SSE id)."""
        self.delivered[line.source] = line.pos
        self.labels_seen.add(line.source)
        return encode_cursor(self.delivered)

    def source_ended(self, key: SourceKey) -> None:
        self.delivered.pop(key, None)

    # --- taking lines from the hub ---------------------------------------------

    async def _collect(self) -> list[Item]:
        hub = self.hub
        if hub is None or hub.closed:
            return []
        items: list[Item] = list(self.control)
        self.control.clear()
        for name in hub.pods:
            if name not in self._announced and any(k.pod == name for k in hub.sources):
                self._announced.add(name)
                items.append(PodChange(name, "added"))
        candidates: list[LogLine] = []
        for key, source in list(hub.sources.items()):
            if key in self._finished:
                if source.ended:
                    continue
                self._read[key] = self._finished.pop(key)  # it came back: go on after its last line
            cursor = self._read.setdefault(key, None)
            if source.after is not None and (cursor is None or cursor < source.after):
                # Behind what the hub holds: first the part of the log before it.
                caught = await self._catch_up(source, cursor)
                if caught:
                    candidates += caught
                    continue  # the buffer's lines in a later batch, after reading on up to it
                self._read[key] = cursor = source.after  # nothing more to read before the buffer
            lines = source.lines
            start = 0 if cursor is None else bisect.bisect_right(lines, cursor, key=lambda x: x.pos)
            candidates += lines[start : start + BATCH]
        candidates = merge_lines([candidates])[:BATCH]
        for line in candidates:
            self._read[line.source] = line.pos
        items += candidates
        # Sources that ended, once this client has had all their lines.
        for key in [k for k in self._read if k not in hub.sources or hub.sources[k].ended]:
            source = hub.sources.get(key)
            if source is not None and source.lines and (self._read[key] or Position(-1, 0)) < source.lines[-1].pos:
                continue
            if source is None and key.pod in hub.pods:
                continue  # a container not started yet: its position still counts
            self._finished[key] = self._read.pop(key)
            items.append(SourceEnded(key))
            if not any(k.pod == key.pod for k in self._read):
                items.append(PodChange(key.pod, "removed"))
                self._announced.discard(key.pod)
        return items

    async def _catch_up(self, source: _HubSource, cursor: Position | None) -> list[LogLine]:
        """The lines after `cursor` and up to where the hub's buffer starts, read from the cluster."""
        key = source.key
        since = format_time_ns(cursor.ts, fraction=False) if cursor is not None else source.since
        try:
            raw = await self.kube.read_log(
                self.namespace, key.pod, key.container, since_time=since, limit_bytes=TAIL_LIMIT_BYTES
            )
        except KubeError as exc:
            self.control.append(Notice(f"some lines of {key.pod} could not be read: {_short(exc.message, 200)}"))
            return []
        reader = LineReader(key, cursor)
        after = source.after
        lines = [line for chunk in raw.split(b"\n") if chunk and (line := reader.accept(chunk)) is not None]
        return [line for line in lines if after is None or line.pos <= after]


def _acquire_stream() -> None:
    global _open_streams
    if _open_streams >= MAX_STREAMS:
        raise ApiError(503, "too_many_streams", "Too many open log streams; retry later")
    _open_streams += 1


def _release_stream(follower: LogFollower) -> None:
    global _open_streams
    if not follower.closed:
        follower.close()
        _open_streams -= 1


def open_streams() -> int:
    """Log streams open in this process (for the bench and tests)."""
    return _open_streams


async def _start_follower(
    request: Request[Any, Any, Any], target: Target, tail: int, resume: Mapping[SourceKey, Position] | None
) -> tuple[LogFollower, list[LogLine]]:
    _acquire_stream()
    follower = LogFollower(_kube(request), target.namespace, target.selector)
    try:
        initial = await follower.start(tail=tail, resume=resume)
    except KubeError as exc:
        _release_stream(follower)
        raise _cluster_error(exc) from None
    except BaseException:
        _release_stream(follower)
        raise
    return follower, initial


# --- routes: logs -------------------------------------------------------------------


_ERRORS = {
    404: ResponseSpec(ErrorBody, description="No such deployment (or operation), or not yours"),
    503: ResponseSpec(ErrorBody, description="The cluster (or its metrics API) is unreachable"),
}

ServiceParam = Annotated[
    str | None, QueryParameter(name="service", required=False, description="Service (default: the first)")
]
TailParam = Annotated[int, QueryParameter(name="tail", description=f"Lines of history, 0..{MAX_TAIL}")]
LimitParam = Annotated[int, QueryParameter(name="limit", description=f"At most this many, 1..{MAX_EVENTS}")]


@get(
    "/api/deployments/{name:str}/logs",
    responses={
        200: ResponseSpec(LogsResponse, description="JSON logs; with follow=true a text/plain stream"),
        **_ERRORS,
    },
)
async def deployment_logs(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    name: FromPath[str],
    service: ServiceParam = None,
    tail: TailParam = DEFAULT_TAIL,
    follow: Annotated[bool, QueryParameter(name="follow", description="Keep streaming new lines")] = False,
) -> Response[Any]:
    """The service's container logs, merged in time order (see the module doc)."""
    tail = _tail_param(tail)
    target = await _target(request, principal, name, service)
    if follow:
        follower, initial = await _start_follower(request, target, tail, None)
        return Stream(
            _text_follow(request, principal, target, follower, initial),
            media_type="text/plain; charset=utf-8",
            headers=SSE_HEADERS,
            background=BackgroundTask(_release, follower),
        )
    kube = _kube(request)
    try:
        listing = await kube.list_pods(target.namespace, target.selector)
        sources, notes = _sources(listing.items)
        per_source, read_notes = await _read_tails(kube, target.namespace, sources, tail)
    except KubeError as exc:
        raise _cluster_error(exc) from None
    lines = merge_lines(per_source, tail)
    contributing = [s for s, lines_of in zip(sources, per_source, strict=True) if lines_of]
    labels = source_labels(contributing) if len(contributing) > 1 else None
    notes += read_notes
    if not listing.items:
        notes.insert(0, target.not_ready_note())
    body = LogsResponse(logs=render_text(lines, labels), statusMessage="; ".join(notes) or None)
    return Response(content=msgspec.json.encode(body), media_type=MediaType.JSON)


async def _release(follower: LogFollower) -> None:
    _release_stream(follower)


async def _text_follow(
    request: Request[Any, Any, Any], principal: Principal, target: Target, follower: LogFollower, initial: list[LogLine]
) -> AsyncIterator[bytes]:
    try:
        labels = source_labels(follower.labels_seen)
        prefixed = len(labels) > 1
        yield render_text(initial, labels if prefixed else None).encode()
        last_check = time.monotonic()
        while True:
            batch = await follower.next_batch(HEARTBEAT_S)
            lines: list[LogLine] = []
            for item in batch:
                if isinstance(item, LogLine):
                    follower.delivered_line(item)
                    lines.append(item)
                elif isinstance(item, SourceEnded):
                    follower.source_ended(item.source)
            if lines:
                if not prefixed and len(follower.labels_seen) > 1:
                    prefixed = True  # a second pod joined: from now on say whose line it is
                labels = source_labels(follower.labels_seen)
                yield render_text(lines, labels if prefixed else None).encode()
            if time.monotonic() - last_check > DEPLOYMENT_CHECK_S:
                last_check = time.monotonic()
                if not await _still_visible(request, principal, target.name):
                    return
    finally:
        _release_stream(follower)


@get(
    "/api/deployments/{name:str}/logs/stream",
    media_type="text/event-stream",
    responses={200: ResponseSpec(LogLineEvent, description="text/event-stream, one event per line"), **_ERRORS},
)
async def deployment_log_stream(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    name: FromPath[str],
    service: ServiceParam = None,
    tail: TailParam = DEFAULT_TAIL,
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID", required=False)] = None,
    last_event_id_query: Annotated[
        str | None, QueryParameter(name="lastEventId", required=False, description="Same as the Last-Event-ID header")
    ] = None,
) -> Stream:
    """Server-Sent Events, one per log line, resumable with Last-Event-ID (see the module doc)."""
    tail = _tail_param(tail)
    target = await _target(request, principal, name, service)
    raw_id = last_event_id or last_event_id_query
    resume = decode_cursor(raw_id) if raw_id else None
    follower, initial = await _start_follower(request, target, tail, resume)
    return Stream(
        _sse_logs(request, principal, target, follower, initial, bad_id=bool(raw_id) and resume is None),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        background=BackgroundTask(_release, follower),
    )


_enc = msgspec.json.Encoder()


@functools.lru_cache(maxsize=4096)  # a line shared by many streams is encoded once
def _line_data(line: LogLine) -> bytes:
    return _enc.encode(
        LogLineEvent(pod=line.source.pod, container=line.source.container, time=line.time, line=line.text)
    )


def _line_event(follower: LogFollower, line: LogLine) -> bytes:
    return sse(_line_data(line), event_id=follower.delivered_line(line))


async def _sse_logs(
    request: Request[Any, Any, Any],
    principal: Principal,
    target: Target,
    follower: LogFollower,
    initial: list[LogLine],
    *,
    bad_id: bool,
) -> AsyncIterator[bytes]:
    try:
        head = [b"retry: 3000\n\n"]
        if bad_id:
            head.append(sse(_enc.encode(StatusEvent("Last-Event-ID not understood; starting over")), event="status"))
        if not follower.pods:
            head.append(sse(_enc.encode(StatusEvent(target.not_ready_note())), event="status"))
        for note in follower.notes:
            head.append(sse(_enc.encode(StatusEvent(note)), event="status"))
        head += [_line_event(follower, line) for line in initial]
        yield b"".join(head)
        last_check = time.monotonic()
        while True:
            batch = await follower.next_batch(HEARTBEAT_S)
            if not batch:
                yield HEARTBEAT
            else:
                out: list[bytes] = []
                for item in batch:
                    if isinstance(item, LogLine):
                        out.append(_line_event(follower, item))
                    elif isinstance(item, PodChange):
                        out.append(sse(_enc.encode(PodEvent(pod=item.pod, state=item.state)), event="pod"))
                    elif isinstance(item, SourceEnded):
                        follower.source_ended(item.source)
                    else:
                        out.append(sse(_enc.encode(StatusEvent(item.message)), event="status"))
                if out:
                    yield b"".join(out)
            if time.monotonic() - last_check > DEPLOYMENT_CHECK_S:
                last_check = time.monotonic()
                if not await _still_visible(request, principal, target.name):
                    end = EndEvent(status="gone", message=f"Deployment '{target.name}' no longer exists")
                    yield sse(_enc.encode(end), event="end")
                    return
    finally:
        _release_stream(follower)


# --- routes: metrics and events ------------------------------------------------------


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@get("/api/deployments/{name:str}/metrics", responses=_ERRORS)
async def deployment_metrics(
    request: Request[Any, Any, Any], principal: CurrentPrincipal, name: FromPath[str], service: ServiceParam = None
) -> MetricsResponse:
    """CPU and memory of the service's pods, summed, from the cluster's metrics.k8s.io API."""
    target = await _target(request, principal, name, service)
    kube = _kube(request)
    metrics, pods = await asyncio.gather(
        kube.pod_metrics(target.namespace, target.selector),
        kube.list_pods(target.namespace, target.selector),
        return_exceptions=True,
    )
    for result in (pods, metrics):
        if isinstance(result, KubeUnavailable) and result.status == 0:
            raise _cluster_error(result)  # the API server itself is unreachable
    if isinstance(metrics, KubeNotFound | KubeUnavailable):
        raise ApiError(
            503,
            "metrics_unavailable",
            "The cluster serves no metrics API (metrics.k8s.io): install metrics-server, "
            f"or wait until it is available ({_short(metrics.message, 120)})",
        )
    for result in (metrics, pods):
        if isinstance(result, KubeError):
            raise _cluster_error(result)
        if isinstance(result, BaseException):
            raise result
    assert isinstance(metrics, PodMetricsList) and isinstance(pods, PodList)
    cpu = Decimal(0)
    memory = Decimal(0)
    latest: tuple[int, str] | None = None
    for item in metrics.items:
        for container in item.containers:
            try:
                cpu += parse_quantity(container.usage.get("cpu", "0"))
                memory += parse_quantity(container.usage.get("memory", "0"))
            except ValueError:
                log.warning("unparsable usage %r in %s", container.usage, target.namespace)
        stamp = parse_time_ns(item.timestamp or "")
        if stamp is not None and (latest is None or stamp > latest[0]):
            latest = (stamp, item.timestamp or "")
    running = [p for p in pods.items if p.metadata.deletion_timestamp is None]
    note = None
    if not running:
        note = target.not_ready_note()
    elif len(metrics.items) < len(running):
        measured = {m.metadata.name for m in metrics.items}
        waiting = sorted(p.metadata.name for p in running if p.metadata.name not in measured)
        note = f"No usage measured yet for {', '.join(waiting)} (metrics arrive about a minute after a pod starts)"
    return MetricsResponse(
        cpuUsage=format_cpu(cpu),
        memoryUsage=format_memory(memory),
        timestamp=latest[1] if latest else _now_iso(),
        cpuMillicores=round(cpu * 1000),
        memoryBytes=int(memory),
        pods=len(metrics.items),
        statusMessage=note,
    )


@get("/api/deployments/{name:str}/events", responses=_ERRORS)
async def deployment_events(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    name: FromPath[str],
    limit: LimitParam = DEFAULT_EVENTS,
) -> EventsResponse:
    """Kubernetes events of the objects in the deployment's namespace, newest first."""
    if not 1 <= limit <= MAX_EVENTS:
        raise ApiError(400, "invalid_input", f"limit must be between 1 and {MAX_EVENTS}")
    target = await _target(request, principal, name, None)
    try:
        listing = await _kube(request).list_events(target.namespace)
    except KubeError as exc:
        raise _cluster_error(exc) from None
    keyed = sorted(
        ((parse_time_ns(e.time or "") or 0, e.metadata.name, e) for e in listing.items),
        key=lambda x: (x[0], x[1]),
        reverse=True,
    )
    events = [
        EventOut(
            type=e.type or "Normal",
            reason=e.reason,
            message=e.message,
            object=EventObject(kind=e.involved_object.kind, name=e.involved_object.name),
            count=e.occurrences,
            time=e.time,
            source=e.reporting_component or (e.source.component if e.source else None) or None,
        )
        for _, _, e in keyed[:limit]
    ]
    note = None if events or target.status == "Ready" else target.not_ready_note()
    return EventsResponse(events=events, statusMessage=note)


# --- route: operation progress -------------------------------------------------------


class _OpSnapshot(NamedTuple):
    status: str
    progress: list[dict[str, Any]]
    message: str
    error: str | None
    result: dict[str, Any] | None


def _seq(item: dict[str, Any], index: int) -> int:
    value = item.get("sequence")
    return value if isinstance(value, int) else index


def _op_snapshot(sessions: sessionmaker[Session], principal: Principal, op_id: str) -> _OpSnapshot:
    with sessions() as db:
        op = ops.get(db, op_id)
        if op is None:
            raise not_found(f"Operation '{op_id}' not found")
        get_visible_deployment(db, principal, op.deployment_name)
        return _OpSnapshot(op.status, list(op.progress or []), op.message, op.error, op.result)


def _progress_event(item: dict[str, Any], index: int) -> bytes:
    return sse(_enc.encode(item), event=str(item.get("type", "event")), event_id=str(_seq(item, index)))


@get(
    "/api/operations/{op_id:str}/events",
    media_type="text/event-stream",
    responses={
        200: ResponseSpec(EndEvent, description="text/event-stream of engine events, then `end`"),
        404: _ERRORS[404],
    },
)
async def operation_events(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    op_id: FromPath[str],
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID", required=False)] = None,
) -> Stream:
    """The operation's engine events as Server-Sent Events, ending when it ends."""
    _need(principal, READ)
    state: State = request.app.state
    sessions: sessionmaker[Session] = state.session_factory
    runner = state.get("runner")
    # Subscribe before reading the stored progress, so no event falls in between.
    live: queue.SimpleQueue[dict[str, Any] | None] | None = runner.subscribe(op_id) if runner is not None else None

    def unsubscribe() -> None:
        if live is not None and runner is not None:
            runner.unsubscribe(op_id, live)  # idempotent

    try:
        first = await anyio.to_thread.run_sync(_op_snapshot, sessions, principal, op_id)
    except BaseException:
        unsubscribe()
        raise
    after = int(last_event_id) if last_event_id and last_event_id.strip().lstrip("-").isdigit() else -1

    async def events() -> AsyncIterator[bytes]:
        last = after
        snapshot = first
        last_sent = time.monotonic()
        try:
            yield b"retry: 3000\n\n"
            while True:
                # 1. What the database holds (all of it at first; later what the live queue missed).
                out = []
                for index, item in enumerate(snapshot.progress):
                    if _seq(item, index) > last:
                        out.append(_progress_event(item, index))
                        last = _seq(item, index)
                if snapshot.status in ("succeeded", "failed"):
                    end = EndEvent(
                        status=snapshot.status, message=snapshot.message, error=snapshot.error, result=snapshot.result
                    )
                    out.append(sse(_enc.encode(end), event="end", event_id="end"))
                    yield b"".join(out)
                    return
                if out:
                    yield b"".join(out)
                    last_sent = time.monotonic()
                # 2. Live events from this process's runner, until it says the operation
                #    ended (None) or the next database poll is due.
                ended = False
                poll_at = time.monotonic() + OP_DB_POLL_S
                while not ended and time.monotonic() < poll_at:
                    out = []
                    while live is not None:
                        try:
                            item = live.get_nowait()
                        except queue.Empty:
                            break
                        if item is None:
                            ended = True
                            break
                        seq = _seq(item, last + 1)
                        if seq > last:
                            out.append(_progress_event(item, seq))
                            last = seq
                    if out:
                        yield b"".join(out)
                        last_sent = time.monotonic()
                    elif time.monotonic() - last_sent > HEARTBEAT_S:
                        yield HEARTBEAT
                        last_sent = time.monotonic()
                    if not ended:
                        await asyncio.sleep(OP_POLL_S)
                # 3. The database's word on the outcome (and progress of operations that
                #    another process runs).
                try:
                    snapshot = await anyio.to_thread.run_sync(_op_snapshot, sessions, principal, op_id)
                except ApiError:  # the deployment went away with its delete operation
                    end = EndEvent(status="gone", message=f"Operation '{op_id}' is no longer visible")
                    yield sse(_enc.encode(end), event="end", event_id="end")
                    return
        finally:
            unsubscribe()

    return Stream(
        events(),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        background=BackgroundTask(_unsubscribe_async, unsubscribe),
    )


async def _unsubscribe_async(unsubscribe: Any) -> None:
    unsubscribe()


ROUTES = [deployment_logs, deployment_log_stream, deployment_metrics, deployment_events, operation_events]
