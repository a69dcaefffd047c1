"""Server-sent events on the wire: one event's bytes, the keep-alive comment and
the headers every stream answers with."""

from __future__ import annotations

HEARTBEAT = b": keep-alive\n\n"
HEARTBEAT_S = 15.0  # a comment line this often while a stream is idle
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
RETRY = b"retry: 3000\n\n"  # how long a browser waits before reconnecting


def sse(data: bytes, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One SSE event; `data` must hold no newline (msgspec JSON never does)."""
    head = b""
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\n"
    if event is not None:
        head += b"event: " + event.encode() + b"\n"
    return head + b"data: " + data + b"\n\n"
