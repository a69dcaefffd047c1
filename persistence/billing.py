"""Billing events and the deployment counts that tier limits are checked against."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from persistence.base import utcnow
from persistence.models import BILLING_KINDS, BillingEvent, Deployment


def record_billing_event(
    session: Session,
    kind: str,
    *,
    user_id: int | None,
    team_id: int | None = None,
    deployment_name: str | None = None,
    template: str | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> BillingEvent:
    """Add an event to the caller's transaction (commit together with the change it bills)."""
    if kind not in BILLING_KINDS:
        raise ValueError(f"unknown billing event kind {kind!r}")
    event = BillingEvent(
        kind=kind,
        user_id=user_id,
        team_id=team_id,
        deployment_name=deployment_name,
        template=template,
        detail=detail,
        at=at or utcnow(),
    )
    session.add(event)
    session.flush()
    return event


def list_billing_events(
    session: Session,
    *,
    limit: int = 100,
    before_id: int | None = None,
    kind: str | None = None,
    user_id: int | None = None,
    team_id: int | None = None,
) -> list[BillingEvent]:
    """Newest first; page with `before_id` = the last id of the previous page."""
    query = select(BillingEvent).order_by(BillingEvent.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(BillingEvent.id < before_id)
    if kind is not None:
        query = query.where(BillingEvent.kind == kind)
    if user_id is not None:
        query = query.where(BillingEvent.user_id == user_id)
    if team_id is not None:
        query = query.where(BillingEvent.team_id == team_id)
    return list(session.scalars(query))


def count_deployments(session: Session, *, team_id: int | None, user_id: int) -> int:
    """Deployments billed to a team (team_id set) or to a user's personal space.

    Every existing row counts, `Deleting` included: it still holds cluster resources
    until the worker removes the row.
    """
    query = select(func.count()).select_from(Deployment)
    if team_id is not None:
        query = query.where(Deployment.team_id == team_id)
    else:
        query = query.where(Deployment.owner_user_id == user_id, Deployment.team_id.is_(None))
    return session.scalar(query) or 0
