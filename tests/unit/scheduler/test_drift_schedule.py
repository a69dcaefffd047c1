"""Scheduled drift checks: which deployments are due (table), and the tick on a real
database with stack config files: checks queued within the concurrency bound, busy
or unready deployments skipped (never queued behind pending work), per-deployment
intervals, and nothing written without the leader's lease."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest
import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from persistence import drift as store
from persistence import operations as ops
from persistence.accounts import add_user
from persistence.base import utcnow
from persistence.db import make_engine, migrate, session_factory
from persistence.models import Deployment, Operation
from programs.spec import KEY_DRIFT, DriftSettings
from scheduler.drift import BUSY, Candidate, DriftScheduler, plan
from scheduler.leader import LeaderLease
from stacks.settings import Settings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=utcnow().tzinfo)


def cand(name: str, *, ago_s: float, interval_s: float = 3600, status: str = "Ready", busy: bool = False) -> Candidate:
    return Candidate(
        deployment_id=hash(name) % 10_000, name=name, status=status, interval_s=interval_s,
        since=NOW - timedelta(seconds=ago_s), busy=busy,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("candidates", "slots", "queued", "skipped", "waiting"),
    [
        ([cand("a", ago_s=10)], 2, [], {}, 0),  # not due yet
        ([cand("a", ago_s=3600)], 2, ["a"], {}, 0),  # due exactly now
        ([cand("a", ago_s=4000, interval_s=0)], 2, [], {}, 0),  # 0: never on a schedule
        ([cand("a", ago_s=61, interval_s=60)], 2, ["a"], {}, 0),  # its own interval
        # Most overdue first, at most `slots`; the rest wait for a slot.
        ([cand("a", ago_s=3700), cand("b", ago_s=9000), cand("c", ago_s=5000)], 2, ["b", "c"], {}, 1),
        ([cand("a", ago_s=3700)], 0, [], {}, 1),
        ([cand("a", ago_s=3700)], -1, [], {}, 1),  # more checks running than the bound
        # Busy or not Ready: skipped, with the reason; never queued behind pending work.
        ([cand("a", ago_s=3700, busy=True), cand("b", ago_s=3700)], 2, ["b"], {"a": BUSY}, 0),
        ([cand("a", ago_s=3700, status="Error")], 2, [], {"a": "the deployment is Error, not Ready"}, 0),
        ([cand("a", ago_s=3700, status="Provisioning", busy=True)], 2, [], {"a": BUSY}, 0),
        ([cand("a", ago_s=10, busy=True)], 2, [], {}, 0),  # busy but not due: nothing to say
    ],
)
def test_plan(
    candidates: list[Candidate], slots: int, queued: list[str], skipped: dict[str, str], waiting: int
) -> None:
    chosen = plan(candidates, NOW, slots)
    assert [c.name for c in chosen.queue] == queued
    assert {c.name: reason for c, reason in chosen.skipped} == skipped
    assert chosen.waiting == waiting


@dataclass
class World:
    settings: Settings
    sessions: sessionmaker[Session]
    user_id: int
    now: datetime

    def deploy(self, name: str, *, status: str = "Ready", age_s: float = 7200, drift: DriftSettings | None = None,
               config: bool = True) -> int:  # fmt: skip
        values = {"shipstack:name": name}
        if drift is not None:
            values[KEY_DRIFT] = msgspec.json.encode(drift).decode()
        with self.sessions() as s, s.begin():
            row = Deployment(name=name, owner_user_id=self.user_id, template="nginx", status=status,
                             created_at=self.now - timedelta(seconds=age_s),
                             stack_config=yaml.safe_dump({"config": values}) if config else None)  # fmt: skip
            s.add(row)
            s.flush()
            return row.id

    def scheduler(self, **kw: object) -> DriftScheduler:
        kw.setdefault("clock", lambda: self.now)
        return DriftScheduler(self.settings, self.sessions, **kw)  # type: ignore[arg-type]

    def checks(self) -> list[str]:
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(Operation.deployment_name).where(Operation.kind == "drift-check").order_by(Operation.id)
                )
            )


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    migrate(database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine, immediate=True)
    with sessions() as s, s.begin():
        user_id = add_user(s, "alice", password_hash=None).id
    env = {"SHIPSTACK_DATA": str(tmp_path / "data"), "SHIPSTACK_DATABASE_URL": database_url,
           "SHIPSTACK_DRIFT_INTERVAL": "3600", "SHIPSTACK_DRIFT_CONCURRENCY": "2"}  # fmt: skip
    yield World(Settings.from_env(env), sessions, user_id, utcnow())
    engine.dispose()


def test_due_deployments_are_queued_within_the_bound(world: World) -> None:
    for name in ("a", "b", "c"):
        world.deploy(name)
    world.deploy("fresh", age_s=60)  # created a minute ago: not checked the moment it exists
    world.deploy("never", drift=DriftSettings(interval_s=0))
    world.deploy("nostack", config=False)  # no stack config yet: nothing to compare
    tick = world.scheduler(notify=lambda: None).tick()
    assert len(tick.queued) == 2 and tick.waiting == 1 and tick.deployments == 5
    assert sorted(world.checks()) == sorted(tick.queued)
    # The slots are taken until those finish: the next tick queues nothing.
    assert world.scheduler().tick().queued == []
    with world.sessions() as s, s.begin():
        s.execute(update(Operation).values(status="succeeded"))
    again = world.scheduler().tick()
    assert len(again.queued) == 1 and set(tick.queued + again.queued) == {"a", "b", "c"}
    # Queued counts as checked for the interval: nobody is due any more.
    with world.sessions() as s, s.begin():
        s.execute(update(Operation).values(status="succeeded"))
    assert world.scheduler().tick().due == 0


def test_a_deployment_with_work_pending_is_skipped_not_queued_behind_it(world: World) -> None:
    busy_id = world.deploy("busy")
    world.deploy("broken", status="Error")
    with world.sessions() as s, s.begin():
        ops.enqueue(s, "busy", "config", {"change": {}}, "config update")
    tick = world.scheduler().tick()
    assert tick.queued == [] and tick.skipped == {"busy": BUSY, "broken": "the deployment is Error, not Ready"}
    assert world.checks() == []
    with world.sessions() as s:
        row = store.get(s, busy_id)
        assert row is not None and row.skip_reason == BUSY and row.skipped_at is not None
        first_skip = row.skipped_at
    later = world.scheduler(clock=lambda: world.now + timedelta(seconds=5)).tick()  # type: ignore[arg-type]
    assert later.skipped["busy"] == BUSY
    with world.sessions() as s:
        assert store.get(s, busy_id).skipped_at == first_skip  # type: ignore[union-attr]  # once per reason
        s.execute(update(Operation).values(status="succeeded"))
        s.commit()
    assert world.scheduler().tick().queued == ["busy"]
    with world.sessions() as s:
        row = store.get(s, busy_id)
        assert row is not None and row.skip_reason is None and row.queued_at is not None


def test_the_interval_counts_from_the_last_check(world: World) -> None:
    row_id = world.deploy("web", drift=DriftSettings(interval_s=600))
    with world.sessions() as s, s.begin():
        store.record_check(s, row_id, at=world.now - timedelta(seconds=300), operation_id="op-1", objects=[])
    assert world.scheduler().tick().due == 0
    with world.sessions() as s, s.begin():
        store.record_check(s, row_id, at=world.now - timedelta(seconds=601), operation_id="op-2", objects=[])
    assert world.scheduler().tick().queued == ["web"]


def test_nothing_is_written_without_the_lease(world: World) -> None:
    world.deploy("web")
    lease = LeaderLease(world.sessions.kw["bind"], "me", ttl_s=30)
    other = LeaderLease(world.sessions.kw["bind"], "other", ttl_s=30)
    assert other.try_acquire()
    tick = world.scheduler(lease=lease).tick()
    assert tick.fenced_out and world.checks() == []
