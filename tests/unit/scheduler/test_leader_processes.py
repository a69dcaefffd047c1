"""The scheduler's single-leader lease across processes (scheduler.leader): two
processes compete for it and write only while they lead, fenced by it. A leader that
stalls past its lease is taken over and its late write refused; a leader killed with
SIGKILL is taken over once its lease expires; no write of an older term ever follows a
newer term's. On SQLite and on PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, select

from persistence.db import make_engine, migrate
from scheduler.leader import LeaderLease
from stacks.settings import REPO_ROOT
from tests.unit.scheduler.leader_process import LOG

TTL = 1.5


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    migrate(eng)
    LOG.create(eng)
    yield eng
    eng.dispose()


def _spawn(url: str, holder: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "tests.unit.scheduler.leader_process", url, holder, str(TTL)],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _writes(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [(r.holder, r.term) for r in conn.execute(select(LOG.c.holder, LOG.c.term).order_by(LOG.c.id))]


def _until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_one_leader_across_processes(engine: Engine, database_url: str) -> None:
    procs = {name: _spawn(database_url, name) for name in ("a", "b")}
    lease = LeaderLease(engine, "observer", ttl_s=TTL)

    def leader() -> str | None:
        current = lease.current()
        return current[0] if current else None

    try:
        _until(lambda: bool(_writes(engine)))
        first = leader()
        assert first in procs
        other = "b" if first == "a" else "a"
        procs[first].send_signal(signal.SIGUSR1)  # stalls past its lease, then writes as if leading
        _until(lambda: other in {h for h, _ in _writes(engine)})
        stdout = procs[first].stdout
        assert stdout is not None and stdout.readline().strip() == "fence refused"
        procs[other].kill()  # the new leader dies without a word
        procs[other].wait(10)
        taken_at = time.monotonic()
        _until(lambda: _writes(engine)[-1][0] == first)
        assert time.monotonic() - taken_at <= 3 * TTL
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait(10)
    writes = _writes(engine)
    terms = [term for _, term in writes]
    assert terms == sorted(terms), "a write of an older term came after a newer term's"
    holders_per_term: dict[int, set[str]] = {}
    for holder, term in writes:
        holders_per_term.setdefault(term, set()).add(holder)
    assert all(len(h) == 1 for h in holders_per_term.values()), holders_per_term
    assert [next(iter(holders_per_term[t])) for t in sorted(holders_per_term)] == [first, other, first]
