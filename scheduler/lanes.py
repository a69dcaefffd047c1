"""Work spread over registries so that a slow or hostile one delays no other.

Each registry (host) gets its own lanes: at most `concurrency` of its items run at
once, the first lane of every registry is started before the second of any (each
registry's first lane has a thread of its own, up to MAX_REGISTRY_THREADS
registries, so registries that take their whole share cannot queue others), and
all of a registry's items run within its `share_s` seconds, counted from when its
first item starts. An item still running when the share ends is cut short by the
registry client's deadline (`within`); an item not started by then is handed to
`ran_out` instead of `work`, and the next poll tries again.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from scheduler.registry import within

MAX_REGISTRY_THREADS = 64
Item = TypeVar("Item")
Result = TypeVar("Result")


def share_label(share_s: float) -> str:
    """How the share is named in deadline errors and `ran_out` reasons."""
    return f"its {share_s:g} s share of this poll"


def run_in_lanes(
    by_host: Mapping[str, Sequence[Item]],
    work: Callable[[Item], Result],
    ran_out: Callable[[str, Item], Result],
    *,
    concurrency: int,
    share_s: float,
    max_workers: int,
) -> list[Result]:
    """`work(item)` for every item, or `ran_out(host, item)` once its registry's share
    is spent; results in no particular order. `max_workers` threads at least, more
    when there are more registries than that."""
    queues = {host: deque(items) for host, items in by_host.items() if items}
    per_host = max(1, concurrency)
    lanes = [host for i in range(per_host) for host, items in queues.items() if i < len(items)]
    if not lanes:
        return []
    lock = threading.Lock()
    began: dict[str, float] = {}
    label = share_label(share_s)

    def lane(host: str) -> list[Result]:
        out: list[Result] = []
        with lock:
            ends = began.setdefault(host, time.monotonic()) + share_s
        while True:
            with lock:
                if not queues[host]:
                    return out
                item = queues[host].popleft()
            left = ends - time.monotonic()
            if left <= 0:
                out.append(ran_out(host, item))
                continue
            with within(left, label):
                out.append(work(item))

    workers = min(len(lanes), max(max_workers, min(len(queues), MAX_REGISTRY_THREADS)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shipstack-poll") as pool:
        futures = [pool.submit(lane, host) for host in lanes]
        return [result for future in futures for result in future.result()]
