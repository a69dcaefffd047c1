"""scheduler.lanes: per-registry concurrency, fairness between registries, and
each registry's share of the poll."""

from __future__ import annotations

import threading
import time

from scheduler.lanes import run_in_lanes
from scheduler.registry import deadline


class FakeWork:
    """Work that takes `seconds`; records the order items start in, the most running
    at once, and the deadline each one ran under."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.running = self.most = 0
        self.deadlines: list[float | None] = []

    def __call__(self, item: str) -> str:
        with self.lock:
            self.started.append(item)
            self.deadlines.append(deadline.remaining())
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        return f"done {item}"


def ran_out(host: str, item: str) -> str:
    return f"{host} ran out at {item}"


def test_every_registry_starts_before_any_gets_a_second_lane() -> None:
    work = FakeWork(0.05)
    by_host = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"], "c": ["c1"]}
    done = run_in_lanes(by_host, work, ran_out, concurrency=2, share_s=60, max_workers=3)
    assert sorted(done) == sorted(f"done {i}" for items in by_host.values() for i in items)
    assert set(work.started[:3]) == {"a1", "b1", "c1"}


def test_a_registry_runs_at_most_concurrency_items_at_once() -> None:
    work = FakeWork(0.02)
    run_in_lanes({"slow": [str(i) for i in range(12)]}, work, ran_out, concurrency=3, share_s=60, max_workers=8)
    assert work.most == 3


def test_registries_that_use_their_whole_share_do_not_queue_the_others() -> None:
    """More registries than workers: each still gets its first lane at once."""
    work = FakeWork(0.2)
    by_host = {f"slow{i}": [f"slow{i}"] for i in range(5)}
    run_in_lanes(by_host, work, ran_out, concurrency=2, share_s=60, max_workers=1)
    assert work.most == 5


def test_what_is_left_when_the_share_runs_out_is_handed_to_ran_out() -> None:
    work = FakeWork(0.6)  # the first item alone outlasts the registry's 0.5 s share
    results = run_in_lanes(
        {"slow": ["1", "2", "3", "4"], "fast": ["5"]}, work, ran_out, concurrency=1, share_s=0.5, max_workers=2
    )
    assert sorted(results) == ["done 1", "done 5", "slow ran out at 2", "slow ran out at 3", "slow ran out at 4"]
    assert all(d is not None and d <= 0.5 for d in work.deadlines)  # each item runs under what is left of the share
