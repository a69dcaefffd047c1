"""Queries of the deployment routes: visible rows, free names, queued work."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.principal import Principal
from api.deployments.tenancy import visible_deployments_filter
from persistence import operations as ops
from persistence.enums import OperationKind, OperationStatus
from persistence.models import Deployment, Operation


def visible_rows(db: Session, principal: Principal, team_id: int | None) -> Sequence[Deployment]:
    query = select(Deployment).where(visible_deployments_filter(principal, team_id))
    return db.scalars(query.order_by(Deployment.created_at)).all()


def name_taken(db: Session, name: str) -> bool:
    return db.scalar(select(Deployment.id).where(Deployment.name == name)) is not None


def active_operations(db: Session, row: Deployment) -> Sequence[Operation]:
    """Queued and running operations of a deployment row, newest first."""
    return db.scalars(
        select(Operation)
        .where(Operation.deployment_id == row.id, Operation.status.in_(ops.ACTIVE))
        .order_by(Operation.created_at.desc(), Operation.id.desc())
    ).all()


def active_delete(db: Session, name: str) -> str | None:
    """The id of a delete queued or running for the deployment."""
    return db.scalar(
        select(Operation.id).where(
            Operation.deployment_name == name, Operation.kind == OperationKind.DELETE, Operation.status.in_(ops.ACTIVE)
        )
    )


def queued_operations(db: Session, row: Deployment) -> Sequence[Operation]:
    """The deployment row's operations not started yet, newest first."""
    return db.scalars(
        select(Operation)
        .where(Operation.deployment_id == row.id, Operation.status == OperationStatus.QUEUED)
        .order_by(Operation.created_at.desc(), Operation.id.desc())
    ).all()
