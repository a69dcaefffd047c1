"""One client's log stream: the lines of every pod of a service after the client's
cursor, as pods come and go, taken from the shared `LogHub`; and the count of
open streams (per process, and per user, so one user cannot take them all)."""

from __future__ import annotations

import asyncio
import bisect
import collections
from collections.abc import Mapping

from api.observe.codec import LineReader, LogLine, Position, SourceKey, encode_cursor, merge_lines, short
from api.observe.formats import format_time_ns
from api.observe.hub import (
    TAIL_LIMIT_BYTES,
    HubSource,
    Item,
    LogHub,
    Notice,
    PodChange,
    SourceEnded,
    join_hub,
    log_sources,
    read_tails,
)
from api.observe.kube import Kube
from api.observe.kube_models import KubeError, Pod

BATCH = 200  # lines written to the client in one chunk


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
            sources, self.notes = log_sources(pods)
            per_source, notes = await read_tails(self.kube, self.namespace, sources, tail)
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
        self.hub = join_hub(self, pods, listing.metadata.resource_version, self.delivered)
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

    async def _catch_up(self, source: HubSource, cursor: Position | None) -> list[LogLine]:
        """The lines after `cursor` and up to where the hub's buffer starts, read from the cluster."""
        key = source.key
        since = format_time_ns(cursor.ts, fraction=False) if cursor is not None else source.since
        try:
            raw = await self.kube.read_log(
                self.namespace, key.pod, key.container, since_time=since, limit_bytes=TAIL_LIMIT_BYTES
            )
        except KubeError as exc:
            self.control.append(Notice(f"some lines of {key.pod} could not be read: {short(exc.message, 200)}"))
            return []
        reader = LineReader(key, cursor)
        after = source.after
        lines = [line for chunk in raw.split(b"\n") if chunk and (line := reader.accept(chunk)) is not None]
        return [line for line in lines if after is None or line.pos <= after]
