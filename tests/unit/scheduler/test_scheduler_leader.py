"""scheduler.leader and scheduler.jobs: exactly one active scheduler per database.

Runs on SQLite (a file, several connections) and on PostgreSQL when the run has
one (tests/conftest.py starts a throwaway server; `engine` is in conftest.py here).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from persistence.base import utcnow
from persistence.db import make_engine, migrate, session_factory
from scheduler.jobs import DRIFT_JOB_ID, JOB_ID, METRICS_JOB_ID, AutoUpdateScheduler
from scheduler.leader import LeaderLease
from stacks.settings import SchedulerSettings, Settings


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def test_one_holder_until_expiry_then_takeover(engine: Engine) -> None:
    clock = Clock()
    a = LeaderLease(engine, "a", ttl_s=30, clock=clock)
    b = LeaderLease(engine, "b", ttl_s=30, clock=clock)
    assert a.try_acquire()
    assert not b.try_acquire()
    clock.now += timedelta(seconds=20)
    assert a.try_acquire()  # renewal
    clock.now += timedelta(seconds=20)
    assert not b.try_acquire()  # renewed 20 s ago: still valid
    clock.now += timedelta(seconds=11)
    assert b.try_acquire()  # a stopped renewing
    assert b.term == a.term + 1  # type: ignore[operator]
    assert not a.try_acquire()
    assert b.current()[:2] == ("b", 2)  # type: ignore[index]


def test_release_hands_over_at_once(engine: Engine) -> None:
    a = LeaderLease(engine, "a", ttl_s=300)
    b = LeaderLease(engine, "b", ttl_s=300)
    assert a.try_acquire()
    assert not b.try_acquire()
    a.release()
    assert b.try_acquire()


def test_fence_refuses_a_lost_lease(engine: Engine) -> None:
    clock = Clock()
    a = LeaderLease(engine, "a", ttl_s=10, clock=clock)
    b = LeaderLease(engine, "b", ttl_s=10, clock=clock)
    sessions = session_factory(engine, immediate=True)
    assert a.try_acquire()
    with sessions() as s, s.begin():
        assert a.fence(s)
    clock.now += timedelta(seconds=11)
    with sessions() as s, s.begin():
        assert not a.fence(s)  # expired, even before anyone took it
    assert b.try_acquire()
    with sessions() as s, s.begin():
        assert not a.fence(s)
        assert b.fence(s)


def test_racing_processes_elect_exactly_one(engine: Engine) -> None:
    leases = [LeaderLease(engine, f"p{i}", ttl_s=60) for i in range(8)]
    results: list[bool] = []
    barrier = threading.Barrier(len(leases))

    def contend(lease: LeaderLease) -> None:
        barrier.wait()
        results.append(lease.try_acquire())

    threads = [threading.Thread(target=contend, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1


def test_only_the_leader_runs_the_scheduled_poll(db_url: str, tmp_path: Path) -> None:
    """Two service processes (two schedulers) on one database: one runs APScheduler
    and the poll job; when it stops, the other takes over the same stored job."""
    migrate(db_url)
    eng = make_engine(db_url)
    settings = Settings.from_env({"SHIPSTACK_DATA": str(tmp_path / "data"), "SHIPSTACK_DATABASE_URL": db_url})
    config = SchedulerSettings(poll_interval_s=0.3, lease_ttl_s=1.0, drift_interval_s=0.3)
    first = AutoUpdateScheduler(settings, eng, config=config, holder="first")
    second = AutoUpdateScheduler(settings, eng, config=config, holder="second")
    runs: dict[str, int] = {"first": 0, "second": 0}
    drift_ticks: dict[str, int] = {"first": 0, "second": 0}

    def counting(instance: AutoUpdateScheduler) -> None:
        real, real_drift = instance.poll_now, instance.drift_now

        def poll_now(*, force: bool = False):  # type: ignore[no-untyped-def]
            runs[instance.holder] += 1
            return real(force=force)

        def drift_now():  # type: ignore[no-untyped-def]
            drift_ticks[instance.holder] += 1
            return real_drift()

        instance.poll_now = poll_now  # type: ignore[method-assign]
        instance.drift_now = drift_now  # type: ignore[method-assign]

    counting(first)
    counting(second)
    try:
        first.start()
        wait_for(lambda: first.is_leader, 5)
        second.start()
        time.sleep(1.5)
        assert first.is_leader and not second.is_leader
        assert runs["first"] >= 2
        assert runs["second"] == 0
        assert drift_ticks["first"] >= 2 and drift_ticks["second"] == 0  # the drift job runs in the leader only
        with eng.connect() as conn:
            jobs = conn.exec_driver_sql("SELECT id FROM apscheduler_jobs").scalars().all()
        assert sorted(jobs) == sorted([JOB_ID, DRIFT_JOB_ID, METRICS_JOB_ID])

        first.stop()  # releases the lease
        wait_for(lambda: second.is_leader, 5)
        before = runs["second"]
        time.sleep(1.0)
        assert runs["second"] > before
        assert second.lease.current()[0] == "second"  # type: ignore[index]
    finally:
        first.stop()
        second.stop()
        eng.dispose()


def test_a_silent_leader_is_replaced_after_its_lease_expires(db_url: str, tmp_path: Path) -> None:
    migrate(db_url)
    eng = make_engine(db_url)
    settings = Settings.from_env({"SHIPSTACK_DATA": str(tmp_path / "data"), "SHIPSTACK_DATABASE_URL": db_url})
    config = SchedulerSettings(poll_interval_s=60, lease_ttl_s=1.0)
    stuck = LeaderLease(eng, "stuck", ttl_s=1.0)
    assert stuck.try_acquire()  # a process that took the lease, then hung
    other = AutoUpdateScheduler(settings, eng, config=config, holder="other")
    try:
        other.start()
        time.sleep(0.5)
        assert not other.is_leader
        wait_for(lambda: other.is_leader, 5)
        assert other.lease.current()[:2] == ("other", 2)  # type: ignore[index]
    finally:
        other.stop()
        eng.dispose()


def wait_for(check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail("condition not reached in time")
