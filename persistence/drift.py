"""Drift results: per deployment, what the last drift check found, and the scheduler's
memory of when it last queued or skipped one.

One row per deployment, tied to the deployment's row id (a deleted deployment takes
its row with it; a new deployment under the same name starts clean). `objects` is
the JSON list the drift check produced: kind, name, change and field paths, never a
value (`stacks.drift_fields`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from persistence.base import Base, NullableJSON


class DriftStatus(Base):
    __tablename__ = "drift_status"

    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True)
    checked_at: Mapped[datetime | None]  # when the last check finished (or failed)
    drifted: Mapped[bool | None]  # None: never checked, or the last check failed
    objects: Mapped[list[dict[str, Any]] | None] = mapped_column(NullableJSON)
    error: Mapped[str | None] = mapped_column(Text)  # why the last check failed
    operation_id: Mapped[str | None] = mapped_column(String(36))  # the last check's operation
    # The reconcile the last check queued because the deployment's policy is "reconcile".
    reconcile_operation_id: Mapped[str | None] = mapped_column(String(36))
    queued_at: Mapped[datetime | None]  # when the scheduler last queued a check
    skipped_at: Mapped[datetime | None]  # when the scheduler last left a due check out
    skip_reason: Mapped[str | None] = mapped_column(Text)


def load(session: Session, deployment_ids: Iterable[int]) -> dict[int, DriftStatus]:
    ids = list(deployment_ids)
    if not ids:
        return {}
    rows = session.scalars(select(DriftStatus).where(DriftStatus.deployment_id.in_(ids)))
    return {row.deployment_id: row for row in rows}


def get(session: Session, deployment_id: int) -> DriftStatus | None:
    return session.get(DriftStatus, deployment_id)


def _row(session: Session, deployment_id: int) -> DriftStatus:
    """The deployment's row, created if missing. The insert runs in a savepoint: the
    scheduler and a worker may both create it at once (PostgreSQL), and the loser
    must read the winner's row rather than fail its whole transaction."""
    row = session.get(DriftStatus, deployment_id)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = DriftStatus(deployment_id=deployment_id)
            session.add(row)
    except IntegrityError:
        row = session.get(DriftStatus, deployment_id, populate_existing=True)
        assert row is not None
    return row


def record_check(
    session: Session,
    deployment_id: int,
    *,
    at: datetime,
    operation_id: str,
    objects: list[dict[str, Any]] | None,
    error: str | None = None,
) -> DriftStatus:
    """A finished check: `objects` (the drifted ones, [] for none), or `error` (None objects)."""
    row = _row(session, deployment_id)
    row.checked_at = at
    row.operation_id = operation_id
    row.objects = objects
    row.drifted = None if objects is None else bool(objects)
    row.error = error
    row.reconcile_operation_id = None
    return row


def record_reconcile_queued(session: Session, deployment_id: int, operation_id: str) -> None:
    _row(session, deployment_id).reconcile_operation_id = operation_id


def record_queued(session: Session, deployment_id: int, at: datetime) -> None:
    row = _row(session, deployment_id)
    row.queued_at = at
    row.skipped_at = None
    row.skip_reason = None


def record_skipped(session: Session, deployment_id: int, at: datetime, reason: str) -> None:
    row = _row(session, deployment_id)
    row.skipped_at = at
    row.skip_reason = reason
