"""Pure helpers of the observe routes: timestamps, quantities, log line numbering,
merging, prefixes, the SSE cursor (Last-Event-ID) and SSE framing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from api.http.sse import sse
from api.observe.codec import (
    LineReader,
    LogLine,
    Position,
    SourceKey,
    decode_cursor,
    encode_cursor,
    merge_lines,
    render_text,
    source_labels,
    split_timestamp,
)
from api.observe.formats import format_cpu, format_memory, format_time_ns, parse_quantity, parse_time_ns
from api.observe.hub import log_sources
from api.observe.kube_models import Pod, decode_watch_event

A = SourceKey("web-1", "web")
B = SourceKey("web-2", "web")


# --- time ----------------------------------------------------------------------------


def test_parse_time_handles_every_precision_and_offsets() -> None:
    base = parse_time_ns("2025-01-02T03:04:05Z")
    assert base == 1735787045 * 10**9
    assert parse_time_ns("2025-01-02T03:04:05.5Z") == base + 500_000_000
    assert parse_time_ns("2025-01-02T03:04:05.123456Z") == base + 123_456_000
    assert parse_time_ns("2025-01-02T03:04:05.123456789Z") == base + 123_456_789
    assert parse_time_ns("2025-01-02T04:04:05+01:00") == base
    assert parse_time_ns("2025-01-02T03:04:05") is None
    assert parse_time_ns("hello") is None
    assert parse_time_ns("2025-13-02T03:04:05Z") is None


def test_format_time_round_trips_with_nine_digits_and_floors_to_seconds() -> None:
    ns = parse_time_ns("2025-01-02T03:04:05.000000042Z")
    assert ns is not None
    assert format_time_ns(ns) == "2025-01-02T03:04:05.000000042Z"
    assert parse_time_ns(format_time_ns(ns)) == ns
    assert format_time_ns(ns + 999_999_000, fraction=False) == "2025-01-02T03:04:05Z"


# --- quantities ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("15m", Decimal("0.015")),
        ("1234567n", Decimal("0.001234567")),
        ("250u", Decimal("0.00025")),
        ("2", Decimal(2)),
        ("1.5", Decimal("1.5")),
        ("32Mi", Decimal(32 * 2**20)),
        ("33554432Ki", Decimal(33554432 * 1024)),
        ("1Gi", Decimal(2**30)),
        ("1G", Decimal(10**9)),
        ("100k", Decimal(100_000)),
        ("1e3", Decimal(1000)),
        ("12E-3", Decimal("0.012")),
    ],
)
def test_parse_quantity(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "m", "12x", "1.2.3", "Mi"])
def test_parse_quantity_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_format_cpu_and_memory_as_the_spec_shows_them() -> None:
    assert format_cpu(parse_quantity("150m")) == "150m"
    assert format_cpu(parse_quantity("15m") + parse_quantity("15m")) == "30m"
    assert format_cpu(parse_quantity("1234567n")) == "1m"
    assert format_cpu(parse_quantity("1500000n")) == "2m"  # half up
    assert format_cpu(Decimal(0)) == "0m"
    assert format_cpu(parse_quantity("2")) == "2000m"
    assert format_memory(parse_quantity("256Mi")) == "256Mi"
    assert format_memory(parse_quantity("32Mi") * 2) == "64Mi"
    assert format_memory(parse_quantity("512Ki")) == "512Ki"
    assert format_memory(parse_quantity("1Gi")) == "1024Mi"
    assert format_memory(Decimal(0)) == "0Mi"


# --- log lines -------------------------------------------------------------------------


def test_split_timestamp() -> None:
    assert split_timestamp(b"2025-01-02T03:04:05.1Z hello world\r") == (
        parse_time_ns("2025-01-02T03:04:05.1Z"),
        "hello world",
    )
    assert split_timestamp(b"no time here") == (None, "no time here")
    assert split_timestamp("2025-01-02T03:04:05Z caf\u00e9".encode()) == (
        parse_time_ns("2025-01-02T03:04:05Z"),
        "caf\u00e9",
    )
    assert split_timestamp(b"2025-01-02T03:04:05Z ") == (parse_time_ns("2025-01-02T03:04:05Z"), "")


def _raw(when: str, text: str) -> bytes:
    return f"{when} {text}".encode()


def test_line_reader_numbers_equal_timestamps_and_skips_up_to_the_cursor() -> None:
    lines = [
        _raw("2025-01-02T03:04:05.1Z", "a"),
        _raw("2025-01-02T03:04:05.1Z", "b"),
        _raw("2025-01-02T03:04:05.1Z", "c"),
        _raw("2025-01-02T03:04:05.2Z", "d"),
        b"continuation without a time",
    ]
    reader = LineReader(A, None)
    got = [reader.accept(raw) for raw in lines]
    assert all(g is not None for g in got)
    positions = [g.pos.n for g in got if g]
    assert positions == [0, 1, 2, 0, 1]
    assert [g.text for g in got if g] == ["a", "b", "c", "d", "continuation without a time"]
    # Resuming after "b": re-reading the same second yields exactly c, d, continuation.
    after_b = got[1].pos  # type: ignore[union-attr]
    again = LineReader(A, after_b)
    rest = [line.text for raw in lines if (line := again.accept(raw)) is not None]
    assert rest == ["c", "d", "continuation without a time"]
    # Resuming after the last line: nothing repeats.
    done = LineReader(A, got[-1].pos)  # type: ignore[union-attr]
    assert [done.accept(raw) for raw in lines] == [None] * len(lines)


def _line(source: SourceKey, ts: int, text: str, n: int = 0) -> LogLine:
    return LogLine(source, Position(ts, n), format_time_ns(ts), text)


def test_merge_lines_orders_by_time_and_keeps_the_tail() -> None:
    a = [_line(A, 1, "a1"), _line(A, 4, "a4"), _line(A, 4, "a4b", 1)]
    b = [_line(B, 2, "b2"), _line(B, 3, "b3"), _line(B, 5, "b5")]
    merged = merge_lines([a, b])
    assert [x.text for x in merged] == ["a1", "b2", "b3", "a4", "a4b", "b5"]
    assert [x.text for x in merge_lines([a, b], 2)] == ["a4b", "b5"]
    assert merge_lines([a, b], 0) == []
    # Same time in two pods: a stable, deterministic order (by source).
    tie = merge_lines([[_line(B, 7, "b")], [_line(A, 7, "a")]])
    assert [x.text for x in tie] == ["a", "b"]


def test_labels_and_rendering() -> None:
    assert source_labels([A, B]) == {A: "web-1", B: "web-2"}
    sidecar = SourceKey("web-1", "proxy")
    assert source_labels([A, sidecar]) == {A: "web-1/web", sidecar: "web-1/proxy"}
    lines = [_line(A, 1, "one"), _line(B, 2, "two")]
    assert render_text(lines, None) == "one\ntwo\n"
    assert render_text(lines, source_labels([A, B])) == "[web-1] one\n[web-2] two\n"
    assert render_text([], None) == ""


# --- the cursor (SSE id / Last-Event-ID) -----------------------------------------------


def test_cursor_round_trip() -> None:
    ts = parse_time_ns("2025-01-02T03:04:05.123456789Z")
    assert ts is not None
    positions = {B: Position(ts, 0), A: Position(ts + 1, 3)}
    encoded = encode_cursor(positions)
    assert encoded == ("1;web-1/web@2025-01-02T03:04:05.123456790Z#3,web-2/web@2025-01-02T03:04:05.123456789Z#0")
    assert decode_cursor(encoded) == positions
    assert decode_cursor("1;") == {}
    assert decode_cursor(encode_cursor({})) == {}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "2;web-1/web@2025-01-02T03:04:05Z#0",
        "1;web-1@2025-01-02T03:04:05Z#0",
        "1;web-1/web@yesterday#0",
        "1;web-1/web@2025-01-02T03:04:05Z#x",
        "1;../../secrets/web@2025-01-02T03:04:05Z#0",
        "1;Web_1/web@2025-01-02T03:04:05Z#0",
    ],
)
def test_cursor_rejects_what_it_did_not_make(text: str) -> None:
    assert decode_cursor(text) is None


def test_sse_framing() -> None:
    assert sse(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert sse(b"{}", event="pod", event_id="7") == b"id: 7\nevent: pod\ndata: {}\n\n"


# --- pods ---------------------------------------------------------------------------


def _pod(name: str, created: str, state: dict) -> Pod:
    raw = {
        "type": "ADDED",
        "object": {
            "metadata": {"name": name, "creationTimestamp": created, "resourceVersion": "9"},
            "spec": {"containers": [{"name": "web"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "web", "state": state}]},
        },
    }
    import msgspec

    kind, pod = decode_watch_event(msgspec.json.encode(raw))
    assert kind == "ADDED" and isinstance(pod, Pod)
    return pod


def test_sources_are_started_containers_in_creation_order() -> None:
    running = {"running": {"startedAt": "2025-01-02T03:04:05Z"}}
    waiting = {"waiting": {"reason": "ContainerCreating"}}
    pods = [
        _pod("web-b", "2025-01-02T03:04:07Z", running),
        _pod("web-a", "2025-01-02T03:04:06Z", running),
        _pod("web-c", "2025-01-02T03:04:08Z", waiting),
    ]
    sources, notes = log_sources(pods)
    assert sources == [SourceKey("web-a", "web"), SourceKey("web-b", "web")]
    assert notes == ["pod web-c: container web is ContainerCreating"]


def test_watch_bookmarks_and_errors_decode() -> None:
    bookmark = (
        b'{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"303"},'
        b'"spec":{"containers":null},"status":{}}}'
    )
    kind, pod = decode_watch_event(bookmark)
    assert kind == "BOOKMARK" and isinstance(pod, Pod) and pod.metadata.resource_version == "303"
    error = b'{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}'
    kind, status = decode_watch_event(error)
    assert kind == "ERROR" and not isinstance(status, Pod) and status is not None and status.code == 410
