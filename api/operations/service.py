"""Reading operations: one by id, a deployment's recent ones, and a snapshot of
one's progress for its event stream."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from api.auth.principal import Principal
from api.deployments.tenancy import can_view, get_visible_deployment
from api.errors import NotFound
from api.operations.schemas import OperationOut, OperationsResponse
from persistence import operations as ops
from persistence.models import Operation


def operation_out(op: Operation, *, with_progress: bool) -> OperationOut:
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
        progress=list(op.progress or []) if with_progress else [],
    )


def visible_operation(db: Session, principal: Principal, op_id: str) -> Operation:
    op = ops.get(db, op_id)
    if op is None or not can_view(principal, op):
        raise NotFound(f"Operation '{op_id}' not found")
    return op


def get_operation(db: Session, principal: Principal, op_id: str) -> OperationOut:
    return operation_out(visible_operation(db, principal, op_id), with_progress=True)


def deployment_operations(db: Session, principal: Principal, name: str) -> OperationsResponse:
    row = get_visible_deployment(db, principal, name)
    return OperationsResponse(operations=[operation_out(o, with_progress=False) for o in ops.for_deployment(db, row)])


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
