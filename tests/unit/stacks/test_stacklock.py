"""stacks.stacklock: one holder per stack across processes, released by PostgreSQL
when the holder's session or process dies, and a lost session noticed by its holder.

Against the run's throwaway PostgreSQL (tests/conftest.py); the SQLite variant is a
lock in the process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import make_url

from persistence.db import normalize_url
from stacks.settings import REPO_ROOT
from stacks.stacklock import LocalStackLocks, PostgresStackLocks, StackLocks, conninfo, lock_key


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = os.environ.get("SHIPSTACK_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("no PostgreSQL server for this run")
    from tests.postgres import fresh_database

    with fresh_database(base) as url:
        yield url


def _nothing() -> None:
    pass


def test_keys_differ_per_stack_and_are_stable() -> None:
    assert lock_key("web") == lock_key("web")
    assert lock_key("web") != lock_key("web2")
    assert -(2**63) <= lock_key("web") < 2**63


@pytest.fixture(params=["local", "postgres"])
def two_lockers(request: pytest.FixtureRequest) -> tuple[StackLocks, StackLocks]:
    """Two claimants: threads of one process (SQLite), or two processes' sessions."""
    if request.param == "local":
        one = LocalStackLocks()
        return one, one
    url = make_url(normalize_url(request.getfixturevalue("pg_url")))
    return PostgresStackLocks(url), PostgresStackLocks(url)


def test_one_holder_per_stack(two_lockers: tuple[StackLocks, StackLocks]) -> None:
    first, second = two_lockers
    held = first.try_acquire("web", _nothing)
    assert held is not None
    assert second.try_acquire("web", _nothing) is None
    other = second.try_acquire("db", _nothing)
    assert other is not None
    held.release()
    taken = second.try_acquire("web", _nothing)
    assert taken is not None and not taken.lost
    taken.release()
    other.release()


def test_a_killed_holder_releases_its_lock(pg_url: str) -> None:
    """`kill -9` of the holding process: PostgreSQL ends its session, the lock is free."""
    url = make_url(normalize_url(pg_url))
    code = (
        "import sys, time; from sqlalchemy import make_url; from stacks.stacklock import PostgresStackLocks;"
        "h = PostgresStackLocks(make_url(sys.argv[1])).try_acquire('web', lambda: None);"
        "print('held' if h else 'busy', flush=True); time.sleep(600)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, url.render_as_string(hide_password=False)],
                             cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        locks = PostgresStackLocks(url)
        assert locks.try_acquire("web", _nothing) is None
        child.kill()
        child.wait(10)
        deadline = time.monotonic() + 10
        held = None
        while held is None and time.monotonic() < deadline:
            held = locks.try_acquire("web", _nothing)
            time.sleep(0.1)
        assert held is not None, "the lock of a killed process stayed held"
        held.release()
    finally:
        child.kill()


def test_a_lost_session_is_noticed_and_freed(pg_url: str) -> None:
    """The holder's session ends under it (an administrator, a failover, a cut): the
    holder hears of it within a probe and the stack is free for others."""
    url = make_url(normalize_url(pg_url))
    lost = threading.Event()
    held = PostgresStackLocks(url).try_acquire("web", lost.set)
    assert held is not None
    with psycopg.connect(conninfo(url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'shipstack stack lock'")  # fmt: skip
    assert lost.wait(10), "the holder did not notice its lock session ended"
    assert held.lost
    other = PostgresStackLocks(url).try_acquire("web", _nothing)
    assert other is not None
    other.release()
    held.release()  # closing a dead session is harmless


def test_a_session_that_stops_answering_counts_as_lost(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe that gets no answer (a stuck proxy, a server that hangs) is given up on:
    the holder stops its pulumi rather than run on a lock it cannot vouch for, and
    letting go of the lock does not hang either."""
    from stacks import stacklock

    monkeypatch.setattr(stacklock, "PROBE", "SELECT pg_sleep(60)")
    lost = threading.Event()
    held = PostgresStackLocks(make_url(normalize_url(pg_url))).try_acquire("web", lost.set)
    assert held is not None
    assert lost.wait(stacklock.PROBE_EVERY_S + stacklock.PROBE_TIMEOUT_S + 5)
    t0 = time.monotonic()
    held.release()
    assert time.monotonic() - t0 < stacklock.PROBE_TIMEOUT_S + 3
