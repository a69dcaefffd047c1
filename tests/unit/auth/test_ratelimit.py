"""Token-bucket limiter with a fake clock."""

from __future__ import annotations

import pytest

from api.auth.ratelimit import RateLimiter
from api.http.errors import retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(3, 60, clock=clock)
    assert [limiter.hit("k") for _ in range(3)] == [None, None, None]
    wait = limiter.hit("k")
    assert wait == pytest.approx(20.0)
    clock.now += 19.9
    assert limiter.hit("k") == pytest.approx(0.1)
    clock.now += 0.1
    assert limiter.hit("k") is None
    # Other keys have their own bucket.
    assert limiter.hit("other") is None


def test_peek_does_not_consume_and_reset_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(1, 300, clock=clock)
    assert limiter.peek("k") is None
    assert limiter.hit("k") is None
    assert limiter.peek("k") == pytest.approx(300.0)
    limiter.reset("k")
    assert limiter.hit("k") is None


def test_disabled_and_eviction() -> None:
    assert RateLimiter(0, 60).hit("k") is None
    clock = Clock()
    limiter = RateLimiter(2, 60, clock=clock, max_keys=2)
    limiter.hit("a")
    limiter.hit("b")
    clock.now += 60  # both refilled: safe to forget
    limiter.hit("c")
    assert set(limiter._buckets) == {"c"}


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after_header(0.01) == {"Retry-After": "1"}
    assert retry_after_header(20.2) == {"Retry-After": "21"}
