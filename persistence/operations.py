"""The durable operation queue: enqueue, claim, heartbeat, finish, recover.

Operations of one deployment run one at a time, oldest first; operations of
different deployments run in parallel. A claim is a compare-and-set on the
row's status, so any number of worker processes sharing the database can
poll the same queue (on SQLite the claiming transaction also takes the write
lock at BEGIN: see `session_factory(immediate=True)`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from persistence import workers
from persistence.base import utcnow
from persistence.enums import ACTIVE, FINISHED, DeploymentStatus, OperationKind, OperationStatus
from persistence.models import Deployment, Operation

__all__ = ["ACTIVE", "FINISHED"]


def enqueue(
    session: Session, deployment: Deployment | str, kind: str, payload: dict[str, Any], message: str = ""
) -> Operation:
    """Queues an operation on a deployment (the row, or its name)."""
    row = (
        deployment
        if isinstance(deployment, Deployment)
        else session.scalar(select(Deployment).where(Deployment.name == deployment))
    )
    op = Operation(
        deployment_name=row.name if row is not None else str(deployment),
        deployment_id=row.id if row is not None else None,
        owner_user_id=row.owner_user_id if row is not None else None,
        team_id=row.team_id if row is not None else None,
        kind=kind,
        payload=payload,
        message=message,
        status=OperationStatus.QUEUED,
    )
    session.add(op)
    session.flush()
    return op


# Kinds that are deltas on the current spec: several of them queued on one deployment
# are applied together by one update (a create or a delete never joins a batch).
COMPOSABLE = frozenset(
    {
        OperationKind.CONFIG,
        OperationKind.RESTART,
        OperationKind.ROLLBACK,
        OperationKind.AUTO_UPDATE,
        OperationKind.AUTO_UPDATE_SETTINGS,
    }
)
MAX_BATCH = 50


def tenant_of(op: Operation) -> str:
    """Whose work an operation is, for fair shares: the team, else the owner."""
    return f"team:{op.team_id}" if op.team_id is not None else f"user:{op.owner_user_id}"


def claim_next(
    session: Session,
    owner: str,
    token: str,
    *,
    skip: set[str] = frozenset(),
    tenant_limit: int | None = None,
) -> list[Operation]:
    """Marks the next runnable operations as running by `owner` under claim `token`
    and returns them, oldest first: one operation, or a create/delete, or a batch of
    the deltas queued on one deployment, applied together by one update.

    Runnable: queued, the oldest queued one of its deployment, no operation of that
    deployment running (anywhere), and its tenant (team, or user) running fewer than
    `tenant_limit` operations in this worker (`owner`), so one tenant's long queue
    cannot take every thread of any worker, however many workers there are.
    On PostgreSQL the candidate rows are locked with SKIP LOCKED, so concurrent
    claimers on other hosts pass each other by. Call inside a transaction.
    """
    running = session.scalars(select(Operation).where(Operation.status == OperationStatus.RUNNING)).all()
    busy = {op.deployment_name for op in running} | set(skip)
    per_tenant: dict[str, int] = {}
    for op in running:
        if op.claimed_by == owner:
            per_tenant[tenant_of(op)] = per_tenant.get(tenant_of(op), 0) + 1
    candidates = session.scalars(
        select(Operation)
        .where(Operation.status == OperationStatus.QUEUED)
        .order_by(Operation.created_at, Operation.id)
        .limit(200)
        .with_for_update(skip_locked=True)
    ).all()
    seen: set[str] = set()
    for op in candidates:
        if op.deployment_name in seen or op.deployment_name in busy:
            seen.add(op.deployment_name)
            continue
        seen.add(op.deployment_name)  # only the oldest queued operation of a deployment may start
        if tenant_limit is not None and per_tenant.get(tenant_of(op), 0) >= tenant_limit:
            continue
        if _waits_behind(session, op):
            continue
        batch = [op]
        if op.kind in COMPOSABLE:
            for later in candidates:
                if later is op or later.deployment_name != op.deployment_name or later.created_at < op.created_at:
                    continue
                if later.kind not in COMPOSABLE or len(batch) >= MAX_BATCH:
                    break
                batch.append(later)
        now = utcnow()
        ids = [b.id for b in batch]
        won = session.execute(
            update(Operation)
            .where(Operation.id.in_(ids), Operation.status == OperationStatus.QUEUED)
            .values(
                status=OperationStatus.RUNNING, claimed_by=owner, claim_token=token, started_at=now, heartbeat_at=now
            )
        ).rowcount
        if won == len(ids):
            return [session.get(Operation, i, populate_existing=True) for i in ids]  # type: ignore[misc]
        session.rollback()  # another claimer took part of it: start over next round
        return []
    return []


def _waits_behind(session: Session, op: Operation) -> bool:
    """Another operation of the deployment runs, or was queued before `op`. Read
    afresh and without SKIP LOCKED, because the candidates above miss both: an older
    one another host is claiming right now (its row is locked, so skipped), and one
    that host committed as running after `running` was read. Without this, on
    PostgreSQL a config change could start before its deployment's create."""
    older = (Operation.created_at < op.created_at) | ((Operation.created_at == op.created_at) & (Operation.id < op.id))
    ahead = select(Operation.id).where(
        Operation.deployment_name == op.deployment_name,
        Operation.id != op.id,
        (Operation.status == OperationStatus.RUNNING) | ((Operation.status == OperationStatus.QUEUED) & older),
    )
    return session.scalar(ahead.limit(1)) is not None


def _fenced(op_ids: list[str], token: str) -> Any:
    """Rows still running under this claim: a worker presumed dead, whose operation
    another worker has re-run, writes nothing."""
    return (Operation.id.in_(op_ids)) & (Operation.claim_token == token) & (Operation.status == OperationStatus.RUNNING)


def heartbeat(session: Session, claims: dict[str, list[str]]) -> None:
    """Renews the operations of each claim token; a claim that lost its rows is ignored."""
    now = utcnow()
    for token, op_ids in claims.items():
        session.execute(update(Operation).where(_fenced(op_ids, token)).values(heartbeat_at=now))


def save_progress(session: Session, op_id: str, token: str, progress: list[Any]) -> bool:
    """False when the claim was lost."""
    done = session.execute(
        update(Operation).where(_fenced([op_id], token)).values(progress=progress, heartbeat_at=utcnow())
    )
    return done.rowcount == 1


def finish(
    session: Session,
    op_id: str,
    token: str,
    *,
    ok: bool,
    message: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    progress: list[Any] | None = None,
) -> bool:
    """Ends an operation still held under `token`; the payload (which may carry env
    values, sealed) is dropped. False, and nothing written, when the claim was lost:
    the caller must then write nothing else either."""
    values: dict[str, Any] = {
        "status": OperationStatus.SUCCEEDED if ok else OperationStatus.FAILED,
        "message": message,
        "result": result,
        "error": error,
        "finished_at": utcnow(),
        "payload": None,
    }
    if progress is not None:
        values["progress"] = progress
    return session.execute(update(Operation).where(_fenced([op_id], token)).values(**values)).rowcount == 1


def fail(session: Session, op_id: str, reason: str) -> None:
    """Ends an operation nobody holds any more (given up after interruptions)."""
    values = {"status": OperationStatus.FAILED, "message": reason, "error": reason, "finished_at": utcnow()}
    session.execute(update(Operation).where(Operation.id == op_id).values(payload=None, **values))


def interrupted(session: Session, *, stale_before: datetime) -> list[Operation]:
    """Running operations nobody carries on any more: their worker's lease expired (a
    process that died or was cut off, on any host), or the operation itself stopped
    being renewed (its worker lives but lost track of it, say a failed final write)."""
    orphaned = Operation.claimed_by.is_(None) | Operation.claimed_by.not_in(workers.live_ids())
    stale = Operation.heartbeat_at.is_(None) | (Operation.heartbeat_at < stale_before)
    query = select(Operation).where(Operation.status == OperationStatus.RUNNING, orphaned | stale)
    return list(session.scalars(query.order_by(Operation.created_at)))


def requeue(
    session: Session, op: Operation, payload: dict[str, Any], message: str, *, token: str | None = None
) -> bool:
    """Puts a running operation back in the queue with a new payload (its place, by
    `created_at`, stays); with `token`, only while that claim holds it."""
    running = (Operation.id == op.id) & (Operation.status == OperationStatus.RUNNING)
    where = _fenced([op.id], token) if token else running
    values = dict(status=OperationStatus.QUEUED, claimed_by=None, claim_token=None, started_at=None,
                  heartbeat_at=None, payload=payload, message=message)  # fmt: skip
    return session.execute(update(Operation).where(where).values(**values)).rowcount == 1


def unclaim(session: Session, op_ids: list[str], token: str) -> None:
    """Gives a claim back untouched (its stack is busy elsewhere): the operations are
    queued again where they were, with the payloads they had."""
    values = dict(status=OperationStatus.QUEUED, claimed_by=None, claim_token=None, started_at=None, heartbeat_at=None)
    session.execute(update(Operation).where(_fenced(op_ids, token)).values(**values))


def holds(session: Session, op_ids: list[str], token: str) -> bool:
    """True while every one of `op_ids` is still running under `token`."""
    held = session.scalars(select(Operation.id).where(_fenced(op_ids, token))).all()
    return len(held) == len(op_ids)


def fail_queued(session: Session, deployment_name: str, reason: str) -> None:
    session.execute(
        update(Operation)
        .where(Operation.deployment_name == deployment_name, Operation.status == OperationStatus.QUEUED)
        .values(status=OperationStatus.FAILED, error=reason, message=reason, finished_at=utcnow(), payload=None)
    )


def has_active(session: Session, deployment_name: str) -> bool:
    return (
        session.scalar(
            select(Operation.id)
            .where(Operation.deployment_name == deployment_name, Operation.status.in_(ACTIVE))
            .limit(1)
        )
        is not None
    )


def get(session: Session, op_id: str) -> Operation | None:
    return session.get(Operation, op_id)


def for_deployment(session: Session, deployment: Deployment, limit: int = 50) -> list[Operation]:
    """The deployment row's operations, newest first (not those of an earlier
    deployment that had the same name)."""
    return list(
        session.scalars(
            select(Operation)
            .where(Operation.deployment_id == deployment.id)
            .order_by(Operation.created_at.desc())
            .limit(limit)
        )
    )


def deployments_stuck_deleting(session: Session) -> list[Deployment]:
    """Deployments marked Deleting with no delete queued or running: a delete
    that failed or was lost halfway, to be retried."""
    active_deletes = select(Operation.deployment_name).where(
        Operation.kind == OperationKind.DELETE, Operation.status.in_(ACTIVE)
    )
    return list(
        session.scalars(
            select(Deployment).where(
                Deployment.status == DeploymentStatus.DELETING, Deployment.name.not_in(active_deletes)
            )
        )
    )


# Heartbeats come every 10 s; three missed and the operation is re-driven elsewhere.
STALE_AFTER = workers.LEASE
