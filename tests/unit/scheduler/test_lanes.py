"""scheduler.lanes: per-registry concurrency, fairness between registries, and
each registry's share of the poll."""

from __future__ import annotations

import threading
import time

from scheduler.lanes import run_in_lanes
from scheduler.registry import deadline


def test_every_registry_starts_before_any_gets_a_second_lane() -> None:
    started: list[str] = []
    lock = threading.Lock()

    def work(item: str) -> str:
        with lock:
            started.append(item)
        time.sleep(0.05)
        return item

    by_host = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"], "c": ["c1"]}
    done = run_in_lanes(by_host, work, lambda h, i: "", concurrency=2, share_s=60, max_workers=3)
    assert sorted(done) == sorted(i for items in by_host.values() for i in items)
    assert set(started[:3]) == {"a1", "b1", "c1"}


def test_a_registry_runs_at_most_concurrency_items_at_once() -> None:
    lock = threading.Lock()
    now = [0]
    most = [0]

    def work(item: int) -> int:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.02)
        with lock:
            now[0] -= 1
        return item

    run_in_lanes({"slow": list(range(12))}, work, lambda h, i: -1, concurrency=3, share_s=60, max_workers=8)
    assert most[0] == 3


def test_what_is_left_when_the_share_runs_out_is_handed_to_ran_out() -> None:
    deadlines: list[float | None] = []

    def work(item: int) -> str:
        deadlines.append(deadline.remaining())
        time.sleep(0.6)  # the first item alone outlasts the registry's 0.5 s share
        return f"done {item}"

    results = run_in_lanes(
        {"slow": [1, 2, 3, 4], "fast": [5]}, work, lambda host, item: f"{host} ran out at {item}",
        concurrency=1, share_s=0.5, max_workers=2,
    )  # fmt: skip
    assert sorted(results) == ["done 1", "done 5", "slow ran out at 2", "slow ran out at 3", "slow ran out at 4"]
    assert all(d is not None and d <= 0.5 for d in deadlines)  # each item runs under what is left of the share


def test_registries_that_use_their_whole_share_do_not_queue_the_others() -> None:
    """More registries than workers: each still gets its first lane at once."""
    lock = threading.Lock()
    now = [0]
    most = [0]

    def work(item: str) -> str:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.2)
        with lock:
            now[0] -= 1
        return item

    by_host = {f"slow{i}": [f"slow{i}"] for i in range(5)}
    run_in_lanes(by_host, work, lambda h, i: "", concurrency=2, share_s=60, max_workers=1)
    assert most[0] == 5
