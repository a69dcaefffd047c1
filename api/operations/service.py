"""Reading operations: one by id, a deployment's recent ones, and a snapshot of
one's progress for its event stream."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from api.auth.principal import Principal
from api.deployments.repo import visible_id
from api.deployments.tenancy import can_view
from api.errors import NotFound
from api.operations import repo
from api.operations.schemas import OperationOut, OperationsResponse
from persistence import operations as ops
from persistence.models import Operation


def operation_out(op: Operation) -> OperationOut:
    return OperationOut(
        id=op.id,
        deployment=op.deployment_name,
        kind=op.kind,
        status=op.status,
        message=op.message,
        createdAt=op.created_at,
        startedAt=op.started_at,
        finishedAt=op.finished_at,
        error=op.error,
        result=op.result,
        progress=list(op.progress or []),
    )


def visible_operation(db: Session, principal: Principal, op_id: str) -> Operation:
    op = ops.get(db, op_id)
    if op is None or not can_view(principal, op):
        raise NotFound(f"Operation '{op_id}' not found")
    return op


def get_operation(db: Session, principal: Principal, op_id: str) -> OperationOut:
    return operation_out(visible_operation(db, principal, op_id))


def deployment_operations(db: Session, principal: Principal, name: str) -> OperationsResponse:
    deployment_id = visible_id(db, principal, name)
    return OperationsResponse(
        operations=[
            OperationOut(
                id=op_id, deployment=deployment, kind=kind, status=status, message=message, createdAt=created_at,
                startedAt=started_at, finishedAt=finished_at, error=error, result=result,
            )
            for (op_id, deployment, kind, status, message, created_at, started_at, finished_at, error, result)
            in repo.recent(db, deployment_id)
        ]
    )  # fmt: skip


class Snapshot(NamedTuple):
    status: str
    progress: list[dict[str, Any]]
    message: str
    error: str | None
    result: dict[str, Any] | None

    @property
    def finished(self) -> bool:
        return self.status in ops.FINISHED


def snapshot(db: Session, principal: Principal, op_id: str) -> Snapshot:
    op = visible_operation(db, principal, op_id)
    return Snapshot(op.status, list(op.progress or []), op.message, op.error, op.result)
