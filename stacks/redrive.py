"""Re-driving work nobody carries on: operations whose worker died (its lease expired,
on whatever host) or stopped renewing them go back to the queue, marked as recovering
(the next run clears what the interrupted one left: stacks.engine.recover) and naming
the worker that ran them (whose backend lock may be left: stacks.locks). An operation
interrupted MAX_ATTEMPTS times is failed. A delete that failed halfway is queued again.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from persistence import operations as ops
from persistence import workers
from persistence.base import utcnow
from persistence.enums import DeploymentStatus, OperationKind
from persistence.models import Deployment, Operation

log = logging.getLogger("shipstack.runner")
MAX_ATTEMPTS = 3


def recover(sessions: sessionmaker[Session]) -> None:
    """Re-queues operations nobody carries on; retries lost deletes; forgets workers
    dead for a day."""
    with sessions() as s, s.begin():
        for op in ops.interrupted(s, stale_before=utcnow() - ops.STALE_AFTER):
            requeue_interrupted(s, op, by=op.claimed_by)
        for dep in ops.deployments_stuck_deleting(s):
            log.warning("deployment %s was left half-deleted; retrying the delete", dep.name)
            ops.enqueue(s, dep, OperationKind.DELETE, {}, "retry an interrupted delete")
        workers.forget_dead(s)


def requeue_interrupted(s: Session, op: Operation, *, by: str | None, token: str | None = None) -> None:
    """`op` (running, run by worker `by`) was interrupted: queued again to resume, or
    failed after MAX_ATTEMPTS. With `token`, only while that claim holds it."""
    payload = dict(op.payload or {})
    attempt = int(payload.get("attempt", 1)) + 1
    if attempt > MAX_ATTEMPTS:
        reason = f"{op.kind} was interrupted {MAX_ATTEMPTS} times; giving up"
        ops.fail(s, op.id, reason)
        dep = s.get(Deployment, op.deployment_id) if op.deployment_id is not None else None
        if dep is not None:
            deleting = op.kind == OperationKind.DELETE or dep.status == DeploymentStatus.DELETING
            dep.status = DeploymentStatus.DELETING if deleting else DeploymentStatus.ERROR
            dep.last_error = dep.status_message = reason
        return
    payload.update(attempt=attempt, recover=True, interrupted_by=by)
    log.warning("operation %s (%s %s) was interrupted; queued again", op.id, op.kind, op.deployment_name)
    ops.requeue(s, op, payload, f"{op.kind} interrupted (its worker stopped); resuming", token=token)
