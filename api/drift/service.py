"""Drift settings, the last check, and drift checks and reconciles on demand: for the
routes and the CLI.

The settings (`policy`, `intervalSeconds`) live in the stack config with the rest of
the spec (`DeploymentSpec.drift`), so a change is queued as an operation and applied
as a revision: `pulumi stack history` shows it. Fields a PUT leaves out keep their
value; the base is the newest accepted change, so two PUTs queued back to back
compose. Checks and reconciles are operations too, queued behind whatever the
deployment is doing, never beside it.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.principal import Principal
from api.deployments import repo
from api.deployments.reads import drift_out
from api.deployments.schemas import Accepted
from api.deployments.service import enqueue_change, invalid, managed
from api.deployments.tenancy import get_visible_deployment
from api.drift.schemas import UNSET, DriftSettingsAccepted, DriftSettingsOut, DriftSettingsPut, DriftStatusOut
from api.errors import Conflict, Internal
from persistence import drift as drift_store
from persistence import operations as ops
from persistence.enums import DeploymentStatus, OperationKind, OperationStatus
from persistence.models import Deployment, Operation
from programs.spec import DRIFT_POLICIES, KEY_DRIFT, DriftSettings, drift_settings_of
from programs.validate import validate_drift
from scheduler.targets import ConfigCache
from stacks.changes import Change
from stacks.settings import Settings

# The plain `shipstack:drift` key only (no secrets, so no key derivation), cached by text.
_configs = ConfigCache(keys=(KEY_DRIFT,))


def stack_settings(row: Deployment) -> DriftSettings | None:
    """What the stack config of record holds (None before the first `up`)."""
    name = row.name
    try:
        config = _configs.read(name, row.stack_config)
    except Exception as exc:  # corrupt stored config: a server-side problem, not the caller's
        raise Internal(f"The stack config of '{name}' cannot be read", "config_unreadable") from exc
    return None if config is None else drift_settings_of(config.get(KEY_DRIFT))


def _pending(db: Session, row: Deployment) -> DriftSettings | None:
    """The drift settings of the newest accepted change not yet applied (a create
    carries the whole spec)."""
    for op in repo.active_operations(db, row):
        payload = op.payload or {}
        source = payload.get("spec") if "spec" in payload else payload.get("change") or {}
        if source.get("drift") is not None:
            return msgspec.convert(source["drift"], DriftSettings)
        if "spec" in payload:
            break
    return None


def effective(db: Session, row: Deployment) -> DriftSettings:
    return _pending(db, row) or stack_settings(row) or DriftSettings()


def settings_out(drift: DriftSettings) -> DriftSettingsOut:
    return DriftSettingsOut(policy=drift.policy, intervalSeconds=drift.interval_s)


def status(db: Session, principal: Principal, name: str, settings: Settings) -> DriftStatusOut:
    row = get_visible_deployment(db, principal, name)
    current = effective(db, row)
    record = drift_store.get(db, row.id)
    default = settings.scheduler.drift_interval_s
    # The service's 0 turns every scheduled check off, whatever a deployment asks for.
    interval = 0 if default <= 0 else int(default if current.interval_s is None else current.interval_s)
    marks = [t for t in ((record.checked_at, record.queued_at) if record else ()) if t is not None]
    since = max(marks, default=row.created_at)
    return DriftStatusOut(
        name=row.name,
        settings=settings_out(current),
        effectiveIntervalSeconds=interval,
        nextCheckAt=since + timedelta(seconds=interval) if interval else None,
        skippedAt=record.skipped_at if record else None,
        skipReason=record.skip_reason if record else None,
        drift=drift_out(record),
    )


def merge(current: DriftSettings, body: DriftSettingsPut) -> DriftSettings:
    return DriftSettings(
        policy=current.policy if body.policy is UNSET else body.policy,  # type: ignore[arg-type]
        interval_s=current.interval_s if body.intervalSeconds is UNSET else body.intervalSeconds,
    )


def check_body(body: DriftSettingsPut) -> None:
    """Invalid for a body that changes nothing or names an unknown policy."""
    if body.policy is UNSET and body.intervalSeconds is UNSET:
        raise invalid(["give policy (report | reconcile), intervalSeconds, or both"])
    if body.policy is not UNSET and body.policy not in DRIFT_POLICIES:
        raise invalid([f"policy must be one of {', '.join(DRIFT_POLICIES)}"])


def update_settings(
    db: Session, principal: Principal, name: str, body: DriftSettingsPut
) -> tuple[int, DriftSettingsAccepted]:
    """Queues the change of settings."""
    row = managed(db, principal, name)
    new = merge(effective(db, row), body)
    errors = validate_drift(new)
    if errors:
        raise invalid(errors)
    interval = "the service's interval" if new.interval_s is None else f"every {new.interval_s} s"
    message = f"drift policy {new.policy}, {'never on a schedule' if new.interval_s == 0 else interval}"
    accepted = enqueue_change(db, row, OperationKind.DRIFT_SETTINGS, Change(drift=new), message)
    return 200, DriftSettingsAccepted(
        success=True, name=row.name, operationId=accepted.operationId, status=accepted.status, message=message,
        settings=settings_out(new),
    )  # fmt: skip


def _enqueue(db: Session, row: Deployment, kind: OperationKind, message: str) -> Accepted:
    """Queues a check or reconcile; one already waiting to start is answered instead
    (a second one queued right behind it would only repeat it)."""
    if row.status == DeploymentStatus.DELETING or repo.active_delete(db, row.name):
        raise Conflict(f"Deployment '{row.name}' is being deleted", "deleting")
    waiting = db.scalar(
        select(Operation.id).where(
            Operation.deployment_name == row.name, Operation.kind == kind, Operation.status == OperationStatus.QUEUED
        )
    )
    if waiting is not None:
        return Accepted(success=True, name=row.name, operationId=waiting, status=row.status, message="already queued")
    op = ops.enqueue(db, row, kind, {}, message)
    return Accepted(success=True, name=row.name, operationId=op.id, status=row.status, message=message)


def check(db: Session, principal: Principal, name: str) -> tuple[int, Accepted]:
    return 200, _enqueue(db, managed(db, principal, name), OperationKind.DRIFT_CHECK, "drift check")


def reconcile(db: Session, principal: Principal, name: str) -> tuple[int, Accepted]:
    return 200, _enqueue(db, managed(db, principal, name), OperationKind.RECONCILE, "reconcile")
