"""The two drift operations as the runner carries them out: `drift-check` and
`reconcile`. Both come through the operation queue, so neither ever runs while
another operation of the same deployment does.

- drift-check: a refresh preview (stacks/drift.py); the result is recorded against
  the deployment's row id. With the deployment's policy "reconcile", drift found
  queues a reconcile behind it.
- reconcile: `up` with refresh of the spec the stack holds (placed like every
  update), so edits made in the cluster are undone; a revision like any other,
  its message "reconcile: ..." (`stacks.execute` runs it; this module names it).
  A check right after records what is left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from persistence import drift as store
from persistence import operations as ops
from persistence.base import utcnow
from persistence.enums import ACTIVE, DeploymentStatus, OperationKind
from persistence.models import Deployment, Operation
from stacks import drift, engine
from stacks.drift_fields import DriftedObject
from stacks.settings import Settings

log = logging.getLogger("shipstack.drift")
KINDS = frozenset({OperationKind.DRIFT_CHECK, OperationKind.RECONCILE})
OnEvent = Callable[[dict[str, Any]], None]
SetStatus = Callable[[str, str, str | None], None]  # (deployment, status, message)
Outcome = tuple[str, dict[str, Any]]  # the operation's message and result


def _deployment(s: Session, name: str) -> Deployment | None:
    return s.scalar(select(Deployment).where(Deployment.name == name))


def _error_text(exc: Exception) -> str:
    return str(exc) if isinstance(exc, engine.EngineError) else f"{type(exc).__name__}: {exc}"


def recorded_check(
    settings: Settings, sessions: sessionmaker[Session], op: Operation, config: str | None, on_event: OnEvent | None
) -> drift.DriftReport:
    """Runs a check against the config of record and records its outcome, a failure
    included (then re-raised)."""
    try:
        report = drift.check(settings, op.deployment_name, config, on_event)
    except Exception as exc:
        with sessions() as s, s.begin():
            row = _deployment(s, op.deployment_name)
            if row is not None:
                store.record_check(s, row.id, at=utcnow(), operation_id=op.id, objects=None, error=_error_text(exc))
        raise
    with sessions() as s, s.begin():
        row = _deployment(s, op.deployment_name)
        if row is not None:
            objects = [msgspec.to_builtins(o) for o in report.objects]
            store.record_check(s, row.id, at=utcnow(), operation_id=op.id, objects=objects)
    return report


def check(
    settings: Settings, sessions: sessionmaker[Session], op: Operation, config: str | None, on_event: OnEvent
) -> Outcome:
    """A drift-check operation: the check, recorded; with the deployment's policy
    "reconcile", drift found queues a reconcile behind it."""
    report = recorded_check(settings, sessions, op, config, on_event)
    objects = [msgspec.to_builtins(o) for o in report.objects]
    if not report.objects:
        return "drift check: no drift", {"drifted": False, "objects": []}
    message = f"drift check: {drift.describe(report.objects)}"
    reconcile_id = None
    if drift.settings_of(config).policy == "reconcile":
        reconcile_id = _queue_reconcile(sessions, op.deployment_name, report.objects)
        if reconcile_id is not None:
            message += "; reconcile queued"
    return message, {"drifted": True, "objects": objects, "reconcileOperationId": reconcile_id}


def _queue_reconcile(sessions: sessionmaker[Session], name: str, objects: list[DriftedObject]) -> str | None:
    """Queues a reconcile behind whatever is queued (policy "reconcile"), unless one is
    already waiting or the deployment is going away."""
    with sessions() as s, s.begin():
        row = _deployment(s, name)
        if row is None or row.status == DeploymentStatus.DELETING:
            return None
        waiting = s.scalar(
            select(Operation.id).where(
                Operation.deployment_name == name,
                Operation.kind.in_((OperationKind.RECONCILE, OperationKind.DELETE)),
                Operation.status.in_(ACTIVE),
            )
        )
        if waiting is not None:
            return None
        queued = ops.enqueue(s, row, OperationKind.RECONCILE, {}, f"reconcile: {drift.describe(objects)}")
        store.record_reconcile_queued(s, row.id, queued.id)
        log.info("drift found in %s; reconcile %s queued (policy reconcile)", name, queued.id)
        return queued.id


def reconcile_message(sessions: sessionmaker[Session], deployment_id: int) -> str:
    """'reconcile: <what the last check found>': the revision's message."""
    with sessions() as s:
        last = store.get(s, deployment_id)
    known = [msgspec.convert(o, DriftedObject) for o in (last.objects or [])] if last is not None else []
    return f"reconcile: {drift.describe(known) if known else 'apply the current spec again'}"
