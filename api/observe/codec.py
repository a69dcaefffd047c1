"""Log lines, their order and the stream cursor: pure functions, no I/O.

A line's place in one container's log is its time (ns) and its ordinal among lines
with exactly that time; the SSE id of a log stream is every followed container's
last place:

    id: 1;nginx-7d9c-x2x4z/nginx@2025-01-02T03:04:05.123456789Z#0

so a client reconnecting with `Last-Event-ID` gets exactly the lines after it, for
each pod independently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from api.observe.formats import format_time_ns, parse_time_ns


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


def short(text: str, limit: int = 300) -> str:
    """`text` on one line, cut to `limit` characters: for messages built from what
    the cluster said."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
