"""The durable operation queue: enqueue, claim, heartbeat, finish, recover.

Operations of one deployment run one at a time, oldest first; operations of
different deployments run in parallel. A claim is a compare-and-set on the
row's status, so any number of worker processes sharing the database can
poll the same queue (on SQLite the claiming transaction also takes the write
lock at BEGIN: see `session_factory(immediate=True)`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

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


def claim_next(session: Session, owner: str, *, skip: set[str] = frozenset()) -> Operation | None:
    """Marks the next runnable operation as running by `owner` and returns it.

    Runnable: queued, the oldest queued one of its deployment, and no
    operation of that deployment is running. Call inside a transaction.
    """
    running = select(Operation.deployment_name).where(Operation.status == OperationStatus.RUNNING)
    candidates = session.execute(
        select(Operation.id, Operation.deployment_name)
        .where(Operation.status == OperationStatus.QUEUED, Operation.deployment_name.not_in(running))
        .order_by(Operation.created_at, Operation.id)
        .limit(50)
    ).all()
    seen: set[str] = set()
    for op_id, name in candidates:
        if name in seen or name in skip:
            continue
        seen.add(name)  # only the oldest queued operation of a deployment may start
        now = utcnow()
        won = session.execute(
            update(Operation)
            .where(Operation.id == op_id, Operation.status == OperationStatus.QUEUED)
            .values(status=OperationStatus.RUNNING, claimed_by=owner, started_at=now, heartbeat_at=now)
        ).rowcount
        if won == 1:
            return session.get(Operation, op_id, populate_existing=True)
    return None


def heartbeat(session: Session, op_ids: list[str]) -> None:
    if op_ids:
        session.execute(update(Operation).where(Operation.id.in_(op_ids)).values(heartbeat_at=utcnow()))


def save_progress(session: Session, op_id: str, progress: list[Any]) -> None:
    session.execute(update(Operation).where(Operation.id == op_id).values(progress=progress, heartbeat_at=utcnow()))


def finish(
    session: Session,
    op_id: str,
    *,
    ok: bool,
    message: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    progress: list[Any] | None = None,
) -> None:
    """Ends an operation; the payload (which may carry env values) is dropped."""
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
    session.execute(update(Operation).where(Operation.id == op_id).values(**values))


def interrupted(session: Session, *, owner_alive, stale_before: datetime) -> list[Operation]:
    """Running operations whose worker is gone: its process is dead, or it
    stopped sending heartbeats (another host)."""
    rows = session.scalars(select(Operation).where(Operation.status == OperationStatus.RUNNING)).all()
    return [
        op
        for op in rows
        if not owner_alive(op.claimed_by or "") or (op.heartbeat_at is not None and op.heartbeat_at < stale_before)
    ]


def requeue(session: Session, op: Operation, payload: dict[str, Any], message: str) -> None:
    session.execute(
        update(Operation)
        .where(Operation.id == op.id, Operation.status == OperationStatus.RUNNING)
        .values(
            status=OperationStatus.QUEUED,
            claimed_by=None,
            started_at=None,
            heartbeat_at=None,
            payload=payload,
            message=message,
        )
    )


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


def for_deployment(session: Session, deployment_name: str, limit: int = 50) -> list[Operation]:
    return list(
        session.scalars(
            select(Operation)
            .where(Operation.deployment_name == deployment_name)
            .order_by(Operation.created_at.desc())
            .limit(limit)
        )
    )


def changes_since(session: Session, deployment_name: str, since: datetime) -> list[Operation]:
    """Operations that changed the deployment (succeeded, with a Pulumi update: not
    "no change"), finished at or after `since`, oldest first: a chart's revisions."""
    rows = session.scalars(
        select(Operation)
        .where(
            Operation.deployment_name == deployment_name,
            Operation.status == OperationStatus.SUCCEEDED,
            Operation.kind != OperationKind.DELETE,
            Operation.finished_at >= since,
        )
        .order_by(Operation.finished_at)
    )
    # `result` is JSON, queried alike on both databases only from Python.
    return [op for op in rows if (op.result or {}).get("changed") is True]


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


STALE_AFTER = timedelta(minutes=2)
