"""In-process token-bucket rate limiter.

Each key (an API key, a user, a login name + IP) has a bucket of `capacity` tokens
refilled evenly over `period_s`, so bursts up to `capacity` pass and the long-run
rate is capacity/period. State lives in this process: with several API processes
each enforces the limit separately (documented limitation; a shared store would be
needed for an exact global limit).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        capacity: int,
        period_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.capacity = capacity
        self.rate = capacity / period_s if capacity > 0 else 0.0
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.capacity), now))
        return min(float(self.capacity), tokens + (now - at) * self.rate)

    def _wait(self, tokens: float) -> float:
        return (1.0 - tokens) / self.rate

    def peek(self, key: str) -> float | None:
        """Seconds until a request for `key` would be allowed, or None if it would be now."""
        if not self.enabled:
            return None
        with self._lock:
            tokens = self._tokens(key, self._clock())
        return None if tokens >= 1.0 else self._wait(tokens)

    def hit(self, key: str) -> float | None:
        """Take a token: None if allowed, else seconds to wait (nothing is taken)."""
        if not self.enabled:
            return None
        with self._lock:
            now = self._clock()
            tokens = self._tokens(key, now)
            if tokens < 1.0:
                return self._wait(tokens)
            if key not in self._buckets and len(self._buckets) >= self._max_keys:
                self._evict_full(now)
            self._buckets[key] = (tokens - 1.0, now)
            return None

    def reset(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)

    def _evict_full(self, now: float) -> None:
        # A refilled bucket is the same as no bucket, so dropping it loses nothing.
        for key in [k for k in self._buckets if self._tokens(k, now) >= self.capacity]:
            del self._buckets[key]
