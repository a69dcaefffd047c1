"""Worker leases and re-driving (persistence.workers, stacks.redrive, the runner's
claim under the stack's lock), on SQLite and on PostgreSQL: the operations of a dead
worker go back to the queue naming that worker, a live worker's stay with it, and a
batch whose stack is held elsewhere goes back to the queue untouched."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from persistence import operations as ops
from persistence import workers
from persistence.accounts import add_user
from persistence.base import utcnow
from persistence.db import make_engine, migrate, session_factory
from persistence.enums import DeploymentStatus, OperationKind, OperationStatus
from persistence.models import Deployment, Operation, Worker
from stacks import redrive
from stacks.runner import Runner
from stacks.settings import Settings
from stacks.stacklock import LocalStackLocks


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    migrate(engine)
    yield session_factory(engine, immediate=True)
    engine.dispose()


def _running_op(sessions: sessionmaker[Session], worker_id: str, name: str = "web") -> str:
    with sessions() as s, s.begin():
        owner = add_user(s, f"u-{name}", password_hash=None)
        dep = Deployment(name=name, owner_user_id=owner.id, template="nginx", status=DeploymentStatus.PROVISIONING)
        s.add(dep)
        s.flush()
        op = ops.enqueue(s, dep, OperationKind.CONFIG, {"change": {"env": {"A": "1"}}}, "set A")
        assert ops.claim_next(s, worker_id, "token-1")
        return op.id


def _live_worker_op(sessions: sessionmaker[Session]) -> str:
    """An operation running under worker w1, whose lease is current."""
    with sessions() as s, s.begin():
        workers.register(s, "w1", "host-a", 10)
    return _running_op(sessions, "w1")


def _age(sessions: sessionmaker[Session], model: type[Worker] | type[Operation], seconds: int) -> None:
    with sessions() as s, s.begin():
        s.execute(update(model).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def _op(sessions: sessionmaker[Session], op_id: str) -> Operation:
    with sessions() as s:
        op = s.get(Operation, op_id)
        assert op is not None
        return op


def test_a_live_workers_operation_stays_with_it(sessions: sessionmaker[Session]) -> None:
    op_id = _live_worker_op(sessions)
    redrive.recover(sessions)
    assert _op(sessions, op_id).status == OperationStatus.RUNNING


def test_a_dead_workers_operation_is_requeued_naming_it(sessions: sessionmaker[Session]) -> None:
    op_id = _live_worker_op(sessions)
    _age(sessions, Worker, 31)  # the lease expired; the operation's own heartbeat is fresh
    with sessions() as s:
        assert not workers.is_alive(s, "w1")
    redrive.recover(sessions)
    op = _op(sessions, op_id)
    assert op.status == OperationStatus.QUEUED
    assert op.claim_token is None and op.claimed_by is None
    assert op.payload == {"change": {"env": {"A": "1"}}, "attempt": 2, "recover": True, "interrupted_by": "w1"}


def test_a_retired_worker_is_dead_at_once_and_a_same_host_pid_means_nothing(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        workers.register(s, "w1", "host-a", 10)
        workers.register(s, "w2", "host-a", 10)  # same host and pid (another container): another worker
    op_id = _running_op(sessions, "w1")
    with sessions() as s, s.begin():
        workers.retire(s, "w1")
    redrive.recover(sessions)
    assert _op(sessions, op_id).status == OperationStatus.QUEUED


def test_an_operation_its_live_worker_stopped_renewing_is_requeued(sessions: sessionmaker[Session]) -> None:
    op_id = _live_worker_op(sessions)
    _age(sessions, Operation, 31)
    redrive.recover(sessions)
    assert _op(sessions, op_id).status == OperationStatus.QUEUED


def test_the_live_count_health_reports_leaves_out_expired_and_retired_leases(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        for worker_id in ("fresh", "stale", "retired", "late"):
            workers.register(s, worker_id, "host-a", 10)
        s.execute(update(Worker).where(Worker.id == "stale").values(heartbeat_at=utcnow() - timedelta(seconds=31)))
        s.execute(update(Worker).where(Worker.id == "late").values(heartbeat_at=utcnow() - timedelta(seconds=25)))
        workers.retire(s, "retired")
    with sessions() as s:
        assert workers.count_live(s) == 2  # fresh, and late (three missed heartbeats make it dead, not two)


def test_renewing_a_forgotten_lease_makes_it_again(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        workers.renew(s, "w1", "host-a", 10)
    with sessions() as s:
        assert workers.is_alive(s, "w1")
        assert [w.id for w in workers.current(s)] == ["w1"]


def test_given_up_after_three_interruptions(sessions: sessionmaker[Session]) -> None:
    op_id = _running_op(sessions, "gone")  # a worker with no lease row at all
    for _ in range(redrive.MAX_ATTEMPTS - 1):
        redrive.recover(sessions)
        with sessions() as s, s.begin():
            assert ops.claim_next(s, "gone", "token-x")
    redrive.recover(sessions)
    op = _op(sessions, op_id)
    assert op.status == OperationStatus.FAILED
    assert op.error == "config was interrupted 3 times; giving up"
    with sessions() as s:
        dep = s.query(Deployment).filter_by(name="web").one()
        assert dep.status == DeploymentStatus.ERROR


def test_a_batch_whose_stack_is_held_elsewhere_goes_back_untouched(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = Settings.from_env({"SHIPSTACK_DATA": str(tmp_path / "data")})
    runner = Runner(settings, sessions, workers=1)
    runner.stack_locks = LocalStackLocks()
    elsewhere = runner.stack_locks.try_acquire("web", lambda: None)
    assert elsewhere is not None
    op_id = _running_op(sessions, "w0")
    with sessions() as s, s.begin():  # handed back, as if the runner's own claim
        s.execute(update(Operation).values(status=OperationStatus.QUEUED, claim_token=None))
    batch, token = runner._claim()
    assert [op.id for op in batch] == [op_id]
    assert runner._run_locked(batch, token) is False
    op = _op(sessions, op_id)
    assert op.status == OperationStatus.QUEUED and op.claim_token is None
    assert op.payload == {"change": {"env": {"A": "1"}}}  # no attempt spent, nothing marked
    assert op.message == "set A"
