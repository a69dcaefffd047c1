"""Overall deadlines on registry work, whatever pace a registry answers at.

httpx's timeouts bound each read, write and connect, so a registry that drips a
byte every few seconds holds a request (and with it a poll, and the scheduler's
turn) for as long as it likes. A deadline set here with `within()` holds for the
calling thread's registry work: the client sets one per request, the poller one
per registry's share of a poll, and the innermost, earliest one wins. Sockets
never wait past it (scheduler/registry/addresses.py cuts every socket operation's
timeout down to what is left).

A context variable, not a parameter: the socket layer is called by httpcore, which
cannot pass one down; each poller thread and request has its own context.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_DEADLINE: ContextVar[tuple[float, str] | None] = ContextVar("registry_deadline", default=None)


@contextmanager
def within(seconds: float, what: str) -> Iterator[None]:
    """Registry work in this block ends by `seconds` from now (or an outer deadline,
    if sooner); `what` names the deadline in the error a late request gets."""
    outer = _DEADLINE.get()
    at = time.monotonic() + seconds
    token = _DEADLINE.set(outer if outer is not None and outer[0] <= at else (at, what))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left before the innermost deadline (may be <= 0), or None without one."""
    current = _DEADLINE.get()
    return None if current is None else current[0] - time.monotonic()


def expired() -> str | None:
    """What ran out (`within`'s `what`) when the deadline has passed, else None."""
    current = _DEADLINE.get()
    if current is None or current[0] > time.monotonic():
        return None
    return current[1]


def bounded(timeout: float | None) -> float | None:
    """`timeout` cut to what is left of the deadline; 0 when it has passed (the caller
    turns that into its own timeout error)."""
    left = remaining()
    if left is None:
        return timeout
    left = max(0.0, left)
    return left if timeout is None else min(timeout, left)
