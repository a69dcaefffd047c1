"""Request work that waits on the engine runs in threads of its own, a few at a time.

A preview starts a pulumi process and waits for it (about a second, most of it the
CLI's and the provider's CPU). Run in anyio's default thread pool, which every sync
handler, the authentication of every request and every database read share, a
burst of previews would hold those threads and every read would queue behind them.
So engine-bound request work gets this small pool instead, bounded twice and never
queued: `total` at once in the process and `per_user` at once for one user; a
request beyond either is refused at once with 429 and Retry-After rather than
waiting (a client that waits holds a connection; one that retries holds nothing).

A slot is freed when the work ends, not when the request does: a client that hangs
up does not stop its pulumi process, so its slot stays taken until that is over.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from api.errors import RateLimited

T = TypeVar("T")
RETRY_AFTER_S = 2.0  # about one preview's time


class EngineWork:
    def __init__(self, total: int, per_user: int = 1, what: str = "previews") -> None:
        self.total = total
        self.per_user = per_user
        self.what = what
        self._pool = ThreadPoolExecutor(max_workers=total, thread_name_prefix="shipstack-engine-request")
        self._lock = threading.Lock()
        self._running: dict[int, int] = {}  # user id -> their work running now

    def running(self) -> int:
        with self._lock:
            return sum(self._running.values())

    def _take(self, user_id: int) -> None:
        with self._lock:
            if self._running.get(user_id, 0) >= self.per_user:
                raise RateLimited(
                    f"You have {self.per_user} of your {self.what} running; retry when it has answered",
                    retry_after_s=RETRY_AFTER_S,
                    code="engine_busy_for_you",
                )
            if sum(self._running.values()) >= self.total:
                raise RateLimited(
                    f"{self.total} {self.what} are running on this server; retry shortly",
                    retry_after_s=RETRY_AFTER_S,
                    code="engine_busy",
                )
            self._running[user_id] = self._running.get(user_id, 0) + 1

    def _give_back(self, user_id: int) -> None:
        with self._lock:
            left = self._running[user_id] - 1
            if left:
                self._running[user_id] = left
            else:
                del self._running[user_id]

    async def run(self, user_id: int, work: Callable[[], T]) -> T:
        """`work()` in this pool for `user_id`, or RateLimited at once when a bound is reached."""
        self._take(user_id)
        try:
            future: Future[T] = self._pool.submit(work)
        except BaseException:
            self._give_back(user_id)
            raise
        future.add_done_callback(lambda _: self._give_back(user_id))
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
