"""What happens when an auto-update's rollout fails: remember the digest, roll back.

The runner (stacks/runner.py) owns operations; it calls in here when an operation
of kind "auto-update" fails (the new pods never became Available within the
deployment's timeout, or the update failed otherwise):

    record_failed_update(session, name, digest, reason)   # never retry this digest
    enqueue_rollback(session, name, payload, reason, previous_revision)

Recording is per deployment: an image that cannot start with one deployment's
config may start with another's, but the same deployment never tries it again,
and the status endpoint shows why it was skipped.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy.orm import Session

from persistence import operations as ops
from persistence.models import Operation
from scheduler import store
from stacks.changes import Change
from stacks.settings import Settings

ROLLBACK_KIND = "rollback"


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


def previous_revision(settings: Settings, deployment_name: str) -> int | None:
    """The newest successful update in the stack's history: what to roll back to
    after a failed `up` (which itself is the newest, failed, revision). Runs a
    pulumi process, so call it outside any database transaction."""
    from stacks import engine  # imported here: only the runner's process needs pulumi

    revisions = engine.history(settings, deployment_name)
    good = [r.version for r in revisions if r.kind == "update" and r.result == "succeeded"]
    return max(good) if good else None


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
