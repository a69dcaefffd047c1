"""Queries of a deployment's revisions: record one, list them, find one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from persistence.base import utcnow
from persistence.models import Revision


def record(
    session: Session,
    deployment_id: int,
    *,
    result: str,
    message: str,
    config: str,
    resource_changes: dict[str, Any],
    operation_id: str | None,
    started_at: datetime,
) -> Revision:
    """The next revision of the deployment, in the caller's transaction (the one that
    records the operation's outcome)."""
    last = session.scalar(select(func.max(Revision.number)).where(Revision.deployment_id == deployment_id))
    revision = Revision(
        deployment_id=deployment_id,
        number=(last or 0) + 1,
        result=result,
        message=message,
        config=config,
        resource_changes=resource_changes,
        operation_id=operation_id,
        started_at=started_at,
        finished_at=utcnow(),
    )
    session.add(revision)
    session.flush()
    return revision


def for_deployment(session: Session, deployment_id: int) -> Sequence[Revision]:
    """Every revision, newest first."""
    query = select(Revision).where(Revision.deployment_id == deployment_id).order_by(Revision.number.desc())
    return session.scalars(query).all()


def get(session: Session, deployment_id: int, number: int) -> Revision | None:
    query = select(Revision).where(Revision.deployment_id == deployment_id, Revision.number == number)
    return session.scalar(query)


def latest(session: Session, deployment_id: int) -> Revision | None:
    query = select(Revision).where(Revision.deployment_id == deployment_id).order_by(Revision.number.desc()).limit(1)
    return session.scalar(query)


def succeeded_since(session: Session, deployment_id: int, since: datetime) -> Sequence[Revision]:
    """Revisions that succeeded and finished at or after `since`, oldest first: a chart's marks."""
    query = select(Revision).where(
        Revision.deployment_id == deployment_id, Revision.result == "succeeded", Revision.finished_at >= since
    )
    return session.scalars(query.order_by(Revision.number)).all()
