"""What happens when an auto-update's rollout fails: remember the digest, roll back.

The runner (stacks/runner.py) owns operations; when an operation of kind
"auto-update" fails (the new pods never became Available within the deployment's
timeout, or the update failed otherwise) its failure hook, `RollbackOnFailure`,
finds the last good revision and calls

    enqueue_rollback(session, name, payload, reason, previous_revision)

which records the digest (`record_failed_update`: never retried) and queues the
rollback as an ordinary "rollback" operation. The hook is handed to the runner by
the service (api/service.py), so `stacks` never imports `scheduler`.

Recording is per deployment: an image that cannot start with one deployment's
config may start with another's, but the same deployment never tries it again,
and the status endpoint shows why it was skipped.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from persistence import operations as ops
from persistence import revisions
from persistence.enums import OperationKind
from persistence.models import Deployment, Operation
from programs.spec import KEY_IMAGE
from scheduler import store
from stacks import stackconfig
from stacks.changes import Change
from stacks.settings import Settings

ROLLBACK_KIND = "rollback"
log = logging.getLogger("shipstack.scheduler.failures")


def record_failed_update(
    session: Session, deployment_name: str, digest: str, reason: str, *, image: str | None = None
) -> None:
    """Marks `digest` as bad for the deployment; the poller never chooses it again.
    Call inside the transaction that records the failure."""
    store.add_bad_digest(session, deployment_name, digest, reason[:2000], image)
    status = store.load_status(session, deployment_name)
    if status is not None:
        status.action = "failed"
        status.reason = f"the update to {image or digest} failed and is rolled back: {reason[:500]}"
        store.save_status(session, status)


def previous_revision(session: Session, deployment_name: str, failed_image: str | None = None) -> int | None:
    """The newest successful revision that did not run `failed_image`: what to roll
    back to after a failed auto-update. A failed `up` is recorded as failed, but one
    whose resources were created before the wait gave up may not be, hence the image
    check."""
    row = session.scalar(select(Deployment).where(Deployment.name == deployment_name))
    if row is None:
        return None
    for revision in revisions.for_deployment(session, row.id):
        image = stackconfig.read_plain(revision.config, (KEY_IMAGE,)).get(KEY_IMAGE)
        if revision.result == "succeeded" and (failed_image is None or image != failed_image):
            return revision.number
    return None


def enqueue_rollback(
    session: Session,
    deployment_name: str,
    payload: dict[str, Any],
    reason: str,
    previous_revision: int | None,
) -> Operation:
    """Records the failed digest and queues the rollback as an ordinary operation.

    With `previous_revision` the rollback re-applies that revision's config (what
    the rollback route does); without it (no history readable) it puts the image
    the auto-update replaced back, which is the same spec because an auto-update
    changes nothing else.
    """
    info = payload.get("auto_update") or {}
    digest = info.get("digest")
    if digest:
        record_failed_update(session, deployment_name, digest, reason, image=info.get("to"))
    short = reason.splitlines()[0][:300] if reason else "the rollout failed"
    if previous_revision is not None:
        change = Change(rollback_version=previous_revision)
        message = f"auto-update rollback to revision {previous_revision}: {info.get('to')} failed: {short}"
    else:
        change = Change(image=info.get("from"), strategy=info.get("strategy"))
        message = f"auto-update rollback to {info.get('from')}: {info.get('to')} failed: {short}"
    body = {"change": msgspec.to_builtins(change), "rollback_of": info}
    return ops.enqueue(session, deployment_name, ROLLBACK_KIND, body, message)


class RollbackOnFailure:
    """The runner's failure hook: `Runner(..., on_failed=RollbackOnFailure(settings, sessions))`.

    Called after the runner recorded an operation as failed (and its failed revision),
    outside that transaction; acts on auto-updates only.
    """

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions

    def __call__(self, kind: str, deployment_name: str, payload: dict[str, Any], error: str) -> Operation | None:
        if kind != OperationKind.AUTO_UPDATE:
            return None
        failed_image = (payload.get("auto_update") or {}).get("to")
        with self.sessions() as s, s.begin():
            revision = previous_revision(s, deployment_name, failed_image)
            op = enqueue_rollback(s, deployment_name, payload, error, revision)
        log.warning("%s: auto-update failed (%s); queued %s", deployment_name, error.splitlines()[0][:200], op.message)
        return op
