"""Queries of the deployment routes: what the reads show, free names, queued work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Select, Text, bindparam, cast, select
from sqlalchemy.orm import Session

from api.auth.principal import Principal
from api.deployments.tenancy import VISIBLE, visibility
from api.errors import NotFound
from persistence import operations as ops
from persistence.drift import DriftStatus
from persistence.enums import OperationKind, OperationStatus
from persistence.models import Deployment, Operation

# What the list, an item and the status show, and no more: never the stack config
# (kilobytes a row, the sealed kubeconfig among them). The JSON columns come as their
# text (a no-op cast on SQLite, `json::text` on PostgreSQL) for msgspec to decode
# straight into the wire structs, not through the json module into dicts first.
SHOWN = (
    Deployment.id,
    Deployment.name,
    Deployment.status,
    Deployment.status_message,
    Deployment.template,
    Deployment.visibility,
    cast(Deployment.ingresses, Text).label("ingresses"),
    Deployment.last_error,
    Deployment.image,
    Deployment.team_id,
    Deployment.owner_user_id,
    DriftStatus.checked_at,
    DriftStatus.drifted,
    cast(DriftStatus.objects, Text).label("objects"),
    DriftStatus.error,
    DriftStatus.operation_id,
    DriftStatus.reconcile_operation_id,
)
STATUS_MESSAGE = 3  # the index in SHOWN of what only the status shows


_SHOWN = select(*SHOWN).outerjoin(DriftStatus, DriftStatus.deployment_id == Deployment.id).where(VISIBLE)
# Prepared once (building a statement costs about what running it does on SQLite).
_ONE = _SHOWN.where(Deployment.name == bindparam("name"))
_AFTER = _SHOWN.where(Deployment.id > bindparam("after")).order_by(Deployment.id)
_PAGE = _AFTER.limit(bindparam("limit"))


def shown(
    db: Session,
    principal: Principal,
    team_id: int | None,
    *,
    name: str | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> Sequence[Row[Any]]:
    """The visible deployments' shown columns in creation order (row id: stable, and
    indexed for the cursor's `after`), or the one called `name`. Rows as the driver
    gives them (no ORM objects: these are only read)."""
    params: dict[str, Any] = visibility(principal, team_id)._asdict()
    if name is not None:
        query, params["name"] = _ONE, name
    else:
        query, params["after"] = (_AFTER if limit is None else _PAGE), after or 0
        if limit is not None:
            params["limit"] = limit
    return db.connection().execute(query, params).all()


_NAMED = Deployment.name == bindparam("name")
_ID = select(Deployment.id).where(VISIBLE, _NAMED)
_CONFIG = select(Deployment.id, Deployment.stack_config).where(VISIBLE, _NAMED)
_PAYLOADS = (
    select(Operation.payload)
    .where(Operation.deployment_id == bindparam("deployment_id"), Operation.status.in_(ops.ACTIVE))
    .order_by(Operation.created_at.desc(), Operation.id.desc())
)


def _visible(db: Session, principal: Principal, name: str, query: Select[Any]) -> Row[Any]:
    found = db.connection().execute(query, {**visibility(principal, None)._asdict(), "name": name}).first()
    if found is None:
        raise NotFound(f"Deployment '{name}' not found")
    return found


def visible_id(db: Session, principal: Principal, name: str) -> int:
    """The row id of the deployment called `name` if the caller sees it, else 404."""
    return _visible(db, principal, name, _ID)[0]


def config_of_record(db: Session, principal: Principal, name: str) -> tuple[int, str | None]:
    """(row id, stack config of record) of the deployment called `name` if the caller sees it, else 404."""
    deployment_id, config = _visible(db, principal, name, _CONFIG)
    return deployment_id, config


def active_payloads(db: Session, deployment_id: int) -> list[dict[str, Any] | None]:
    """The payloads of the deployment row's queued and running operations, newest first."""
    return list(db.connection().execute(_PAYLOADS, {"deployment_id": deployment_id}).scalars())


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
