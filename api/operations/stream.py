"""An operation's engine events as server-sent events.

Replays the progress the operation recorded, then the engine's events as this
process's runner publishes them (and, for an operation another process runs, as
the database receives them), then `event: end` with the outcome. Event names are
the progress item types (`step`, `done`, `diagnostic`, `summary`); ids are the
engine's sequence numbers, so `Last-Event-ID` resumes. The credential is checked
again every RECHECK_S: a revoked key ends the stream.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
import msgspec
from sqlalchemy.orm import Session, sessionmaker

from api.auth.authenticate import reauthenticate
from api.auth.principal import READ, Principal
from api.errors import Invalid, NotFound
from api.http.sse import HEARTBEAT, HEARTBEAT_S, RETRY, sse
from api.observe.schemas import EndEvent
from api.operations.service import Snapshot, snapshot

LIVE_POLL_S = 0.2  # how often the live queue is drained
DB_POLL_S = 2.0  # database poll (operations run by another process)
RECHECK_S = 30.0

_enc = msgspec.json.Encoder()
Live = queue.SimpleQueue[dict[str, Any] | None]


# The ids this stream sends: sequence numbers, and "end".
EVENT_ID_PATTERN = r"^\s*(-?[0-9]{1,18}|end)?\s*$"


def resume_after(last_event_id: str | None) -> int:
    """The sequence number a reconnecting client has had; 400 for an id this stream never sent.

    An empty id is no id: an EventSource whose last event had no id sends none."""
    if last_event_id is None:
        return -1
    text = last_event_id.strip()
    if text in ("", "end"):
        return -1
    if text.lstrip("-").isdigit() and len(text) <= 18:
        return int(text)
    raise Invalid("Last-Event-ID must be a sequence number this stream sent", "bad_event_id")


def sequence(item: dict[str, Any], index: int) -> int:
    value = item.get("sequence")
    return value if isinstance(value, int) else index


def progress_event(item: dict[str, Any], index: int) -> bytes:
    return sse(_enc.encode(item), event=str(item.get("type", "event")), event_id=str(sequence(item, index)))


def end_event(snap: Snapshot) -> bytes:
    end = EndEvent(status=snap.status, message=snap.message, error=snap.error, result=snap.result)
    return sse(_enc.encode(end), event="end", event_id="end")


def read_snapshot(sessions: sessionmaker[Session], principal: Principal, op_id: str) -> Snapshot:
    with sessions() as db:
        return snapshot(db, principal, op_id)


def still_allowed(sessions: sessionmaker[Session], principal: Principal) -> bool:
    with sessions() as db:
        fresh = reauthenticate(db, principal)
    return fresh is not None and fresh.has_scope(READ)


async def events(
    sessions: sessionmaker[Session],
    principal: Principal,
    op_id: str,
    first: Snapshot,
    after: int,
    live: Live | None,
    unsubscribe: Callable[[], None],
) -> AsyncIterator[bytes]:
    last = after
    snap = first
    last_sent = last_check = time.monotonic()
    try:
        yield RETRY
        while True:
            # 1. What the database holds (all of it at first; later what the live queue missed).
            out = []
            for index, item in enumerate(snap.progress):
                if sequence(item, index) > last:
                    out.append(progress_event(item, index))
                    last = sequence(item, index)
            if snap.finished:
                yield b"".join([*out, end_event(snap)])
                return
            if out:
                yield b"".join(out)
                last_sent = time.monotonic()
            # 2. Live events from this process's runner, until it says the operation
            #    ended (None) or the next database poll is due.
            ended = False
            poll_at = time.monotonic() + DB_POLL_S
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
                    seq = sequence(item, last + 1)
                    if seq > last:
                        out.append(progress_event(item, seq))
                        last = seq
                if out:
                    yield b"".join(out)
                    last_sent = time.monotonic()
                elif time.monotonic() - last_sent > HEARTBEAT_S:
                    yield HEARTBEAT
                    last_sent = time.monotonic()
                if not ended:
                    await asyncio.sleep(LIVE_POLL_S)
            # 3. The database's word on the outcome, and a fresh look at the credential.
            gone = EndEvent(status="gone", message=f"Operation '{op_id}' is no longer visible to you")
            if time.monotonic() - last_check > RECHECK_S:
                last_check = time.monotonic()
                if not await anyio.to_thread.run_sync(still_allowed, sessions, principal):
                    yield sse(_enc.encode(gone), event="end", event_id="end")
                    return
            try:
                snap = await anyio.to_thread.run_sync(read_snapshot, sessions, principal, op_id)
            except NotFound:
                yield sse(_enc.encode(gone), event="end", event_id="end")
                return
    finally:
        unsubscribe()
