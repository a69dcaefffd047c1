"""Auto-update settings and the scheduler's last decision, for the routes, the pages
and the CLI.

Settings live in the stack config like the rest of the spec, so a change queues an
operation with `Change(auto_update=..., strategy=...)` and the runner applies it as a
Pulumi update: `pulumi stack history` shows every change of policy. Fields a PUT
leaves out keep their current value (`null` or "" clears include/exclude/interval);
the base is the newest accepted change, so two PUTs queued back to back compose.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy.orm import Session

from api.auth.principal import Principal
from api.autoupdate.schemas import (
    UNSET,
    AutoUpdateAccepted,
    AutoUpdatePut,
    BadDigestOut,
    CandidateOut,
    RepositoryOut,
    StatusOut,
)
from api.deployments import repo
from api.deployments.history import auto_update_settings
from api.deployments.schemas import AutoUpdateSettings
from api.deployments.service import enqueue_change, invalid, managed
from api.deployments.tenancy import get_visible_deployment
from api.errors import Internal
from persistence.enums import OperationKind
from persistence.models import Deployment
from programs.spec import KEY_AUTO_UPDATE, KEY_STRATEGY, STRATEGIES, UPDATE_POLICIES, AutoUpdate
from programs.validate import validate_auto_update
from scheduler import store
from scheduler.targets import ConfigCache
from stacks.changes import Change
from stacks.settings import Settings
from stacks.stackconfig import StackConfigError

StackSettings = tuple[AutoUpdate | None, str | None]

# Plain config values only (no secrets, so no key derivation), cached by file mtime.
_configs = ConfigCache()


def stack_settings(row: Deployment) -> StackSettings:
    """What the stack config of record holds (None, None before the first `up`)."""
    try:
        config = _configs.read(row.name, row.stack_config)
    except StackConfigError as exc:  # corrupt stored config: a server-side problem, not the caller's
        raise Internal(f"The stack config of '{row.name}' cannot be read", "config_unreadable") from exc
    if not config:
        return None, None
    raw = config.get(KEY_AUTO_UPDATE)
    try:
        auto = msgspec.json.decode(raw, type=AutoUpdate) if raw else AutoUpdate()
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Internal(f"The auto-update config of '{row.name}' is invalid", "config_unreadable") from exc
    return auto, config.get(KEY_STRATEGY) or None


def _pending(db: Session, row: Deployment) -> StackSettings:
    """The auto-update settings and strategy of the newest accepted, not yet applied
    change that sets them (a create carries the whole spec)."""
    auto: AutoUpdate | None = None
    strategy: str | None = None
    for op in repo.active_operations(db, row):
        payload = op.payload or {}
        source = payload.get("spec") if "spec" in payload else payload.get("change") or {}
        if auto is None and source.get("auto_update") is not None:
            auto = msgspec.convert(source["auto_update"], AutoUpdate)
        if strategy is None and source.get("strategy"):
            strategy = str(source["strategy"])
        if "spec" in payload or (auto is not None and strategy is not None):
            break
    return auto, strategy


def _effective(db: Session, row: Deployment) -> tuple[AutoUpdate, str]:
    stack = stack_settings(row)
    pending_auto, pending_strategy = _pending(db, row)
    return pending_auto or stack[0] or AutoUpdate(), pending_strategy or stack[1] or "rolling"


def get_settings(db: Session, principal: Principal, name: str, settings: Settings) -> AutoUpdateSettings:
    """The settings in force, or those of the newest change still queued."""
    return auto_update_settings(*_effective(db, get_visible_deployment(db, principal, name)))


def merge(current: AutoUpdate, body: AutoUpdatePut) -> AutoUpdate:
    def pick(value: Any, old: Any) -> Any:
        if value is UNSET:
            return old
        return None if value == "" else value

    return AutoUpdate(
        enabled=body.enabled,
        policy=pick(body.policy, current.policy),
        include=pick(body.include, current.include),
        exclude=pick(body.exclude, current.exclude),
        interval_s=pick(body.intervalSeconds, current.interval_s),
        prerelease=pick(body.prerelease, current.prerelease),
    )


def check(body: AutoUpdatePut, auto: AutoUpdate | None = None) -> None:
    """Invalid for a bad field; `auto` is the merged result (the fields given alone when None)."""
    if not body.deployment_name:
        raise invalid(["deployment_name is required"])
    errors: list[str] = []
    if body.strategy is not UNSET and body.strategy not in STRATEGIES:
        errors.append(f"strategy must be one of {', '.join(STRATEGIES)}")
    if body.policy is not UNSET and body.policy not in UPDATE_POLICIES:
        errors.append(f"policy must be one of {', '.join(UPDATE_POLICIES)}")
    else:
        errors += validate_auto_update(auto if auto is not None else merge(AutoUpdate(), body))
    if errors:
        raise invalid(errors)


def update(db: Session, principal: Principal, body: AutoUpdatePut) -> tuple[int, AutoUpdateAccepted]:
    """Queues the change of settings."""
    name = body.deployment_name
    row = managed(db, principal, name)
    current, strategy = _effective(db, row)
    auto = merge(current, body)
    check(body, auto)
    new_strategy = strategy if body.strategy is UNSET else str(body.strategy)
    change = Change(auto_update=auto, strategy=None if body.strategy is UNSET else new_strategy)
    message = "auto-update " + ("enabled" if auto.enabled else "disabled") + f" ({new_strategy}, {auto.policy})"
    accepted = enqueue_change(db, row, OperationKind.AUTO_UPDATE_SETTINGS, change, message)
    return 200, AutoUpdateAccepted(
        success=True, name=name, operationId=accepted.operationId, status=accepted.status,
        message=message, autoUpdate=auto_update_settings(auto, new_strategy),
    )  # fmt: skip


def status(db: Session, principal: Principal, name: str, settings: Settings) -> StatusOut:
    """The scheduler's last decision: every candidate tag and why it was chosen or
    rejected, the repository's last poll, and digests never retried."""
    auto, strategy = _effective(db, get_visible_deployment(db, principal, name))
    last = store.load_status(db, name)
    bad = store.bad_digests(db, [name]).get(name, {})
    repository = (
        store.load_repositories(db, [last.repository]).get(last.repository) if last and last.repository else None
    )
    interval = auto.interval_s or int(settings.scheduler.poll_interval_s)
    decision = last.decision if last is not None else None
    checked = last.checked_at if last is not None else None
    return StatusOut(
        name=name,
        enabled=auto.enabled,
        policy=auto.policy,
        strategy=strategy,
        intervalSeconds=interval,
        image=last.image if last is not None else None,
        checkedAt=checked,
        nextCheckAt=checked + timedelta(seconds=interval) if checked is not None and auto.enabled else None,
        action=last.action if last is not None else None,
        reason=last.reason if last is not None else None,
        currentTag=decision.current_tag if decision else None,
        currentDigest=decision.current_digest if decision else None,
        targetTag=decision.target_tag if decision else None,
        targetDigest=decision.target_digest if decision else None,
        operationId=last.operation_id if last is not None else None,
        candidates=[
            CandidateOut(tag=c.tag, verdict=c.verdict, code=c.code, reason=c.reason, digest=c.digest)
            for c in (decision.candidates if decision else [])
        ],
        candidatesOmitted=decision.omitted if decision else 0,
        repository=None
        if repository is None
        else RepositoryOut(
            name=repository.repository,
            polledAt=repository.polled_at,
            changedAt=repository.changed_at,
            tagCount=len(repository.tags),
            pages=repository.pages,
            truncated=repository.truncated,
            error=repository.error,
            rateLimitedUntil=repository.blocked_until,
        ),
        badDigests=[
            BadDigestOut(digest=b.digest, reason=b.reason, recordedAt=b.recorded_at, image=b.image)
            for b in sorted(bad.values(), key=lambda b: b.recorded_at, reverse=True)
        ],
    )
