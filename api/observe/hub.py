"""The shared upstream of the log streams of one service in this process: one pod
watch and one followed log per container, whatever the number of clients.

A kubelet spends an inotify instance and the API server a proxied connection on
every followed log, so per-client follows would cap the streams at what the node
allows (128 inotify instances by default); shared, a service's streams cost its
pods' follows once. The hub keeps the last HUB_LINES lines of each container in
memory; each client (`api.observe.follower.LogFollower`) keeps its own cursor and
takes the lines after it from the hub, or first reads the part of the log the hub
no longer (or never) held, so every client still gets every line exactly once.
When the last client leaves, the hub cancels its tasks, closing its watch and logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from api.observe.codec import LineReader, LogLine, Position, SourceKey, short
from api.observe.formats import format_time_ns, parse_time_ns
from api.observe.kube import Kube
from api.observe.kube_models import KubeError, KubeNotFound, KubeUnavailable, Pod, Status, decode_watch_event

if TYPE_CHECKING:
    from api.observe.follower import LogFollower

log = logging.getLogger("shipstack.api.observe")

# One container's part of a tail read: a bound on memory when lines are huge.
TAIL_LIMIT_BYTES = 8 * 1024 * 1024
# After a pod is deleted, how long its log stream may still deliver its last lines.
POD_GONE_GRACE_S = 2.0
RETRY_MAX_S = 10.0
# A finished container is re-read when its pod changes, or at the latest after this.
RESTART_POLL_S = 30.0
HUB_LINES = 1000  # lines kept per container for the streams sharing it (a client further behind reads the cluster)
# An ended container's last lines stay this long for the streams still taking them.
ENDED_KEEP_S = 30.0


def log_sources(pods: Iterable[Pod]) -> tuple[list[SourceKey], list[str]]:
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


async def read_tails(
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
            return [], f"pod {source.pod}: {short(exc.message, 200)}"
        reader = LineReader(source, None)
        lines = [line for chunk in raw.split(b"\n") if chunk and (line := reader.accept(chunk)) is not None]
        return lines, None

    results = await asyncio.gather(*(one(s) for s in sources))
    return [lines for lines, _ in results], [note for _, note in results if note]


class PodChange(NamedTuple):
    pod: str
    state: str  # "added" | "removed"


class SourceEnded(NamedTuple):
    source: SourceKey


class Notice(NamedTuple):
    message: str


Item = LogLine | PodChange | SourceEnded | Notice


@dataclass(eq=False)
class HubSource:
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
        self.sources: dict[SourceKey, HubSource] = {}
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
        HUBS.pop((asyncio.get_running_loop(), self.kube, self.namespace, self.selector), None)
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
            source = HubSource(
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

    def _stop_source(self, source: HubSource) -> None:
        if source.task is not None and not source.task.done():
            source.task.cancel()

    def _forget(self, source: HubSource) -> None:
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

    def _append(self, source: HubSource, line: LogLine) -> None:
        source.lines.append(line)
        if len(source.lines) > HUB_LINES * 3 // 2:  # trim in chunks: amortised O(1)
            cut = len(source.lines) - HUB_LINES
            source.after = source.lines[cut - 1].pos
            del source.lines[:cut]

    async def _follow(self, source: HubSource) -> None:
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


HUBS: dict[tuple[asyncio.AbstractEventLoop, Kube, str, str], LogHub] = {}


def open_hubs() -> int:
    """Shared upstreams (pod watch + followed logs) open in this process."""
    return len(HUBS)


def join_hub(
    follower: LogFollower, pods: list[Pod], resource_version: str, hints: Mapping[SourceKey, Position]
) -> LogHub:
    """The hub of the follower's service in this event loop, started on first use."""
    key = (asyncio.get_running_loop(), follower.kube, follower.namespace, follower.selector)
    hub = HUBS.get(key)
    if hub is None or hub.closed:
        hub = HUBS[key] = LogHub(follower.kube, follower.namespace, follower.selector)
        hub.start(pods, resource_version, hints)
    hub.subscribers.add(follower)
    return hub
