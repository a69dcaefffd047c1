"""The operations list's query: the columns it shows, never an operation's progress
(up to 300 engine events each) or payload, which a list of fifty would otherwise read
and decode on every request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from persistence.models import Operation

LISTED = (
    Operation.id,
    Operation.deployment_name,
    Operation.kind,
    Operation.status,
    Operation.message,
    Operation.created_at,
    Operation.started_at,
    Operation.finished_at,
    Operation.error,
    Operation.result,
)
_RECENT = (
    select(*LISTED)
    .where(Operation.deployment_id == bindparam("deployment_id"))
    .order_by(Operation.created_at.desc())
    .limit(bindparam("limit"))
)


def recent(db: Session, deployment_id: int, limit: int = 50) -> Sequence[Row[Any]]:
    """The deployment row's latest operations, newest first (not those of an earlier
    deployment that had the same name)."""
    return db.connection().execute(_RECENT, {"deployment_id": deployment_id, "limit": limit}).all()
