"""How many log streams this process holds open: at most MAX_STREAMS in all
(503 beyond, see bench/log_streams.py) and MAX_STREAMS_PER_USER for any one user
(429 beyond), so one user cannot take the whole limit."""

from __future__ import annotations

import threading
from collections import Counter

from api.errors import RateLimited, Unavailable

MAX_STREAMS = 2000
MAX_STREAMS_PER_USER = 20
RETRY_AFTER_S = 10.0


class StreamSlots:
    def __init__(self, total: int = MAX_STREAMS, per_user: int = MAX_STREAMS_PER_USER) -> None:
        self.total = total
        self.per_user = per_user
        self._held: Counter[int] = Counter()
        self._lock = threading.Lock()

    def acquire(self, user_id: int) -> None:
        with self._lock:
            if sum(self._held.values()) >= self.total:
                raise Unavailable("Too many open log streams; retry later", "too_many_streams")
            if self._held[user_id] >= self.per_user:
                raise RateLimited(
                    f"You have {self.per_user} log streams open already; close one first",
                    retry_after_s=RETRY_AFTER_S,
                    code="too_many_streams",
                )
            self._held[user_id] += 1

    def release(self, user_id: int) -> None:
        with self._lock:
            self._held[user_id] -= 1
            if self._held[user_id] <= 0:
                del self._held[user_id]

    def open(self) -> int:
        with self._lock:
            return sum(self._held.values())


SLOTS = StreamSlots()


def open_streams() -> int:
    """Log streams open in this process (for the bench and tests)."""
    return SLOTS.open()
