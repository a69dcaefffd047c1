"""Fencing tokens on the operation queue: a worker whose claim was lost (its operation
re-queued as interrupted and claimed again by another worker under a new token)
can no longer finish it, renew it or write its progress; every such write reports
False and leaves the row exactly as it was, while the new holder's writes land.
The runner's executor, told its claim is gone, writes nothing else either (it does
not delete the deployment, nor mark it failed). On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from persistence import operations as ops
from persistence.base import utcnow
from persistence.db import make_engine, migrate, session_factory
from persistence.enums import OperationKind
from persistence.models import Deployment, Operation, User
from stacks import engine as stack_engine
from stacks.execute import Executor
from stacks.settings import Settings
from tests.held import held

PROGRESS = [{"sequence": 1, "type": "step", "op": "update", "resource": "r", "urn": "u"}]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.service.database_url)
    migrate(engine)
    yield session_factory(engine, immediate=True)
    engine.dispose()


def deployment(sessions: sessionmaker[Session], name: str = "web") -> Deployment:
    with sessions() as s, s.begin():
        user = s.scalar(select(User).where(User.name == "alice"))
        if user is None:
            user = User(name="alice")
            s.add(user)
            s.flush()
        row = Deployment(name=name, owner_user_id=user.id, template="nginx", status="Ready", ingresses=[])
        s.add(row)
    return row


def enqueue(sessions: sessionmaker[Session], row: Deployment, kind: str = OperationKind.CONFIG) -> str:
    with sessions() as s, s.begin():
        return ops.enqueue(s, row, kind, {"change": {"restart_stamp": "x"}}, f"{kind} by alice").id


def claim(sessions: sessionmaker[Session], owner: str, token: str) -> list[str]:
    with sessions() as s, s.begin():
        return [op.id for op in ops.claim_next(s, owner, token)]


def snapshot(sessions: sessionmaker[Session], op_id: str) -> dict[str, Any]:
    with sessions() as s:
        row = s.execute(select(Operation.__table__).where(Operation.__table__.c.id == op_id)).one()
        return dict(row._mapping)


def presume_dead(sessions: sessionmaker[Session]) -> None:
    """What a live runner's recovery does with a worker that stopped renewing its claim."""
    with sessions() as s, s.begin():
        stale = ops.interrupted(s, stale_before=utcnow() + timedelta(seconds=1))
        assert stale, "nothing was running"
        for op in stale:
            ops.requeue(s, op, {**(op.payload or {}), "attempt": 2, "recover": True}, "interrupted; resuming")


def lost_writes(sessions: sessionmaker[Session], op_id: str, token: str) -> list[bool]:
    """Every write a worker makes under its claim; each says whether it landed."""
    with sessions() as s, s.begin():
        progressed = ops.save_progress(s, op_id, token, [{"sequence": 99, "type": "diagnostic", "message": "stale"}])
    with sessions() as s, s.begin():
        ops.heartbeat(s, {token: [op_id]})
    with sessions() as s, s.begin():
        finished = ops.finish(
            s, op_id, token, ok=True, message="done by the old worker", result={"changed": True}, progress=[]
        )
    with sessions() as s, s.begin():
        failed = ops.finish(s, op_id, token, ok=False, message="failed by the old worker", error="boom")
    return [progressed, finished, failed]


def test_a_worker_that_lost_its_claim_writes_nothing_and_the_new_holder_does(
    sessions: sessionmaker[Session],
) -> None:
    row = deployment(sessions)
    op_id = enqueue(sessions, row)
    assert claim(sessions, "host-a", "token-a") == [op_id]
    with sessions() as s, s.begin():
        assert ops.save_progress(s, op_id, "token-a", PROGRESS)  # while it holds the claim, it may

    # A stops renewing; recovery re-queues its operation. Queued, it takes no writes from A.
    presume_dead(sessions)
    queued = snapshot(sessions, op_id)
    assert (queued["status"], queued["claimed_by"], queued["claim_token"]) == ("queued", None, None)
    assert lost_writes(sessions, op_id, "token-a") == [False, False, False]
    assert snapshot(sessions, op_id) == queued

    # B claims it again under a new token; A, come back to life, still writes nothing.
    assert claim(sessions, "host-b", "token-b") == [op_id]
    held = snapshot(sessions, op_id)
    assert held["status"] == "running" and held["claimed_by"] == "host-b" and held["claim_token"] == "token-b"
    assert lost_writes(sessions, op_id, "token-a") == [False, False, False]
    assert snapshot(sessions, op_id) == held

    # B's writes land.
    with sessions() as s, s.begin():
        assert ops.save_progress(s, op_id, "token-b", PROGRESS)
    with sessions() as s, s.begin():
        ops.heartbeat(s, {"token-b": [op_id], "token-a": [op_id]})
    renewed = snapshot(sessions, op_id)
    assert renewed["progress"] == PROGRESS and renewed["heartbeat_at"] >= held["heartbeat_at"]
    with sessions() as s, s.begin():
        assert ops.finish(s, op_id, "token-b", ok=True, message="done by B", result={"changed": False})
    done = snapshot(sessions, op_id)
    assert (done["status"], done["message"], done["result"], done["payload"]) == (
        "succeeded", "done by B", {"changed": False}, None,
    )  # fmt: skip

    # Finished, it takes no more writes from anyone, B included.
    assert lost_writes(sessions, op_id, "token-a") == [False, False, False]
    assert lost_writes(sessions, op_id, "token-b") == [False, False, False]
    assert snapshot(sessions, op_id) == done


def test_a_lost_batch_is_fenced_as_a_whole(sessions: sessionmaker[Session]) -> None:
    row = deployment(sessions)
    first, second = enqueue(sessions, row), enqueue(sessions, row, OperationKind.RESTART)
    assert claim(sessions, "host-a", "token-a") == [first, second]  # deltas run as one batch
    presume_dead(sessions)
    assert claim(sessions, "host-b", "token-b") == [first, second]
    before = {op_id: snapshot(sessions, op_id) for op_id in (first, second)}
    for op_id in (first, second):
        assert lost_writes(sessions, op_id, "token-a") == [False, False, False]
    assert {op_id: snapshot(sessions, op_id) for op_id in (first, second)} == before


class StolenDuringDestroy:
    """A fake `engine.destroy` (the real one needs a cluster): while it "runs", the
    worker is presumed dead and another claims the delete; then it ends as given."""

    def __init__(self, sessions: sessionmaker[Session], error: Exception | None = None) -> None:
        self.sessions = sessions
        self.error = error

    def __call__(self, settings: Any, name: str, current: str | None, on_event: Any = None) -> None:
        presume_dead(self.sessions)
        assert claim(self.sessions, "host-b", "token-b") != []
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize("outcome", ["succeeds", "fails"])
def test_the_executor_writes_nothing_once_its_claim_is_gone(
    sessions: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    row = deployment(sessions)
    op_id = enqueue(sessions, row, OperationKind.DELETE)
    error = stack_engine.EngineError("the cluster refused") if outcome == "fails" else None
    monkeypatch.setattr(stack_engine, "destroy", StolenDuringDestroy(sessions, error))
    with sessions() as s, s.begin():
        batch = ops.claim_next(s, "host-a", "token-a")
    Executor(settings, sessions, lambda op_id, item: None, None, worker_id="host-a").run(batch, "token-a", held(batch))

    op = snapshot(sessions, op_id)
    assert (op["status"], op["claim_token"], op["finished_at"], op["error"]) == ("running", "token-b", None, None)
    with sessions() as s:
        dep = s.get(Deployment, row.id)
        assert dep is not None, "a worker that lost its claim deleted the deployment"
        assert (dep.status, dep.last_error) == ("Ready", None)


def test_a_later_operation_waits_while_another_host_claims_the_first(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    """Another host is mid-claim on a deployment's create (its row locked, nothing
    committed yet): the config change queued after it is not claimed here, where
    SKIP LOCKED hides the create; nor once the create runs. (In CI, a host read the
    running operations just before another committed the create as running, and
    started the config change first.)"""
    if settings.service.database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: no claim runs beside another")
    row = deployment(sessions)
    first = enqueue(sessions, row, OperationKind.CREATE)
    enqueue(sessions, row, OperationKind.CONFIG)
    with sessions() as other_host:
        other_host.begin()
        other_host.scalars(select(Operation).where(Operation.id == first).with_for_update()).one()
        with sessions() as s, s.begin():
            assert ops.claim_next(s, "host-b", "token-b") == []
        other_host.rollback()
    with sessions() as s, s.begin():
        assert [op.id for op in ops.claim_next(s, "host-a", "token-a")] == [first]
    with sessions() as s, s.begin():
        assert ops.claim_next(s, "host-b", "token-b") == []
