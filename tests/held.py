"""A stack lock for tests that run an `Executor` by hand: the real one-process lock
(`stacks.stacklock.LocalStackLocks`), taken for the batch's stack."""

from __future__ import annotations

from persistence.models import Operation
from stacks.stacklock import Held, LocalStackLocks


def held(batch: list[Operation]) -> Held:
    lock = LocalStackLocks().try_acquire(batch[0].deployment_name, lambda: None)
    assert lock is not None  # a fresh set of locks holds nothing
    return lock
