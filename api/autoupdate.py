"""Auto-update routes: the settings of `../shared/spec/deployments-api.txt`
("Auto-Update Configuration") and an explanation of the scheduler's last decision.

    GET /api/deployments/auto-update?name=           the settings in force
    PUT /api/deployments/auto-update                 change them (queued, like every write)
    GET /api/deployments/{name}/auto-update/status   last poll, candidates and why

Settings live in the stack config like the rest of the spec, so a PUT queues an
operation with `Change(auto_update=..., strategy=...)` and the runner applies it as
a Pulumi update: `pulumi stack history` shows every change of policy. Fields a PUT
leaves out keep their current value (`null` clears include/exclude/interval); the
base is the newest accepted change, so two PUTs queued back to back compose.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import anyio
import msgspec
from litestar import Request, Response, get, put
from litestar.params import FromPath, FromQuery
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from api.auth import CurrentPrincipal
from api.deployments import _bad, _enqueue, _managed, _need, _state, _write
from api.errors import ApiError
from api.principal import READ
from api.tenancy import get_visible_deployment
from persistence import operations as ops
from persistence.models import Operation
from programs.spec import KEY_AUTO_UPDATE, KEY_STRATEGY, STRATEGIES, UPDATE_POLICIES, AutoUpdate
from programs.validate import validate_auto_update
from scheduler import store
from scheduler.jobs import default_poll_interval
from scheduler.targets import ConfigCache
from stacks.changes import Change
from stacks.settings import Settings

UNSET = msgspec.UNSET
UnsetType = msgspec.UnsetType
OPERATION_KIND = "auto-update-settings"

# Plain config values only (no secrets, so no key derivation), cached by file mtime.
_configs = ConfigCache()


# --- bodies ----------------------------------------------------------------------


class AutoUpdateSettings(msgspec.Struct, frozen=True):
    """The settings as GET answers them; None fields are sent as null."""

    enabled: bool
    strategy: str
    policy: str
    include: str | None
    exclude: str | None
    intervalSeconds: int | None
    prerelease: bool


class AutoUpdatePut(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    deployment_name: str
    enabled: bool
    strategy: str | UnsetType = UNSET
    policy: str | UnsetType = UNSET
    include: str | UnsetType | None = UNSET
    exclude: str | UnsetType | None = UNSET
    intervalSeconds: int | UnsetType | None = UNSET
    prerelease: bool | UnsetType = UNSET


class AutoUpdateAccepted(msgspec.Struct, frozen=True):
    success: bool
    name: str
    operationId: str
    status: str
    message: str
    autoUpdate: AutoUpdateSettings


class CandidateOut(msgspec.Struct, frozen=True, omit_defaults=True):
    tag: str
    verdict: str
    code: str
    reason: str
    digest: str | None = None


class RepositoryOut(msgspec.Struct, frozen=True):
    name: str
    polledAt: datetime | None
    changedAt: datetime | None
    tagCount: int
    pages: int
    truncated: bool
    error: str | None
    rateLimitedUntil: datetime | None


class BadDigestOut(msgspec.Struct, frozen=True):
    digest: str
    reason: str
    recordedAt: datetime
    image: str | None


class StatusOut(msgspec.Struct, frozen=True):
    name: str
    enabled: bool
    policy: str
    strategy: str
    intervalSeconds: int
    image: str | None
    checkedAt: datetime | None
    nextCheckAt: datetime | None
    action: str | None  # update | none | baseline | error | skipped | failed; None: never polled
    reason: str | None
    currentTag: str | None
    currentDigest: str | None
    targetTag: str | None
    targetDigest: str | None
    operationId: str | None
    candidates: list[CandidateOut]
    candidatesOmitted: int
    repository: RepositoryOut | None
    badDigests: list[BadDigestOut]


# --- the settings in force -----------------------------------------------------------


def _settings_out(auto: AutoUpdate, strategy: str) -> AutoUpdateSettings:
    return AutoUpdateSettings(
        enabled=auto.enabled,
        strategy=strategy,
        policy=auto.policy,
        include=auto.include,
        exclude=auto.exclude,
        intervalSeconds=auto.interval_s,
        prerelease=auto.prerelease,
    )


def _stack_settings(settings: Settings, name: str) -> tuple[AutoUpdate | None, str | None]:
    """What the stack config holds (None, None before the first `up`)."""
    try:
        config = _configs.read(settings, name)
    except Exception as exc:  # unreadable YAML: a server-side problem, not the caller's
        raise ApiError(500, "config_unreadable", f"The stack config of '{name}' cannot be read") from exc
    if not config:
        return None, None
    raw = config.get(KEY_AUTO_UPDATE)
    try:
        auto = msgspec.json.decode(raw, type=AutoUpdate) if raw else AutoUpdate()
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ApiError(500, "config_unreadable", f"The auto-update config of '{name}' is invalid") from exc
    return auto, config.get(KEY_STRATEGY) or None


def _pending(db: Session, name: str) -> tuple[AutoUpdate | None, str | None]:
    """The auto-update settings and strategy of the newest accepted, not yet applied
    change that sets them (a create carries the whole spec)."""
    auto: AutoUpdate | None = None
    strategy: str | None = None
    rows = db.scalars(
        select(Operation)
        .where(Operation.deployment_name == name, Operation.status.in_(ops.ACTIVE))
        .order_by(Operation.created_at.desc(), Operation.id.desc())
    ).all()
    for op in rows:
        payload = op.payload or {}
        source = payload.get("spec") if "spec" in payload else payload.get("change") or {}
        if auto is None and source.get("auto_update") is not None:
            auto = msgspec.convert(source["auto_update"], AutoUpdate)
        if strategy is None and source.get("strategy"):
            strategy = str(source["strategy"])
        if "spec" in payload or (auto is not None and strategy is not None):
            break
    return auto, strategy


def _effective(db: Session, stack: tuple[AutoUpdate | None, str | None], name: str) -> tuple[AutoUpdate, str]:
    pending_auto, pending_strategy = _pending(db, name)
    auto = pending_auto or stack[0] or AutoUpdate()
    strategy = pending_strategy or stack[1] or "rolling"
    return auto, strategy


# --- routes ----------------------------------------------------------------------


@get("/api/deployments/auto-update", sync_to_thread=True)
def get_auto_update(request: Request, principal: CurrentPrincipal, name: FromQuery[str]) -> AutoUpdateSettings:
    """The auto-update settings in force, or those of the newest change still queued."""
    _need(principal, READ)
    settings, sessions, _ = _state(request)
    with sessions() as db:
        get_visible_deployment(db, principal, name)
        auto, strategy = _effective(db, _stack_settings(settings, name), name)
    return _settings_out(auto, strategy)


def _merge(current: AutoUpdate, body: AutoUpdatePut) -> AutoUpdate:
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


def _check(body: AutoUpdatePut, auto: AutoUpdate) -> None:
    errors: list[str] = []
    if body.strategy is not UNSET and body.strategy not in STRATEGIES:
        errors.append(f"strategy must be one of {', '.join(STRATEGIES)}")
    if body.policy is not UNSET and body.policy not in UPDATE_POLICIES:
        errors.append(f"policy must be one of {', '.join(UPDATE_POLICIES)}")
    else:
        errors += validate_auto_update(auto)
    if errors:
        raise _bad(errors)


def _decode_put(raw: bytes) -> AutoUpdatePut:
    try:
        return msgspec.json.decode(raw, type=AutoUpdatePut)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_input", f"Invalid request body: {exc}") from None
    except msgspec.DecodeError:
        raise ApiError(400, "invalid_input", "Request body must be a JSON object") from None


@put("/api/deployments/auto-update", status_code=200)
async def put_auto_update(request: Request, principal: CurrentPrincipal) -> Response:
    """`{"deployment_name", "enabled", "strategy"?, "policy"?, "include"?, "exclude"?,
    "intervalSeconds"?, "prerelease"?}`; queued as an operation, answered at once."""
    body = _decode_put(await request.body())
    if not body.deployment_name:
        raise _bad(["deployment_name is required"])
    # The fields given are checked before anything is looked up; the merged result
    # again inside the transaction.
    _check(body, _merge(AutoUpdate(), body))
    settings, _, _ = _state(request)
    name = body.deployment_name
    # Read the stack file before the write transaction (on SQLite that holds the write lock).
    stack = await anyio.to_thread.run_sync(_stack_settings, settings, name)

    def action(db: Session) -> tuple[int, AutoUpdateAccepted]:
        row = _managed(db, principal, name)
        current, strategy = _effective(db, stack, name)
        auto = _merge(current, body)
        _check(body, auto)
        new_strategy = strategy if body.strategy is UNSET else str(body.strategy)
        change = Change(auto_update=auto, strategy=None if body.strategy is UNSET else new_strategy)
        message = "auto-update " + ("enabled" if auto.enabled else "disabled") + f" ({new_strategy}, {auto.policy})"
        accepted = _enqueue(db, row, OPERATION_KIND, {"change": msgspec.to_builtins(change)}, message)
        return 200, AutoUpdateAccepted(
            success=True, name=name, operationId=accepted.operationId, status=accepted.status,
            message=message, autoUpdate=_settings_out(auto, new_strategy),
        )  # fmt: skip

    def run() -> Response:
        return _write(request, principal, msgspec.to_builtins(body), action)

    return await anyio.to_thread.run_sync(run)


@get("/api/deployments/{name:str}/auto-update/status", sync_to_thread=True)
def auto_update_status(request: Request, principal: CurrentPrincipal, name: FromPath[str]) -> StatusOut:
    """The scheduler's last decision for the deployment: every candidate tag and why it
    was chosen or rejected, the repository's last poll, and digests never retried."""
    _need(principal, READ)
    settings, sessions, _ = _state(request)
    with sessions() as db:
        get_visible_deployment(db, principal, name)
        auto, strategy = _effective(db, _stack_settings(settings, name), name)
        status, bad, repo = None, {}, None
        # The scheduler creates its tables when it first starts; until then nothing was polled.
        if inspect(db.connection()).has_table(store.status_table.name):
            status = store.load_status(db, name)
            bad = store.bad_digests(db, [name]).get(name, {})
            if status is not None and status.repository:
                repo = store.load_repositories(db, [status.repository]).get(status.repository)
    interval = auto.interval_s or int(default_poll_interval())
    decision = status.decision if status is not None else None
    checked = status.checked_at if status is not None else None
    return StatusOut(
        name=name,
        enabled=auto.enabled,
        policy=auto.policy,
        strategy=strategy,
        intervalSeconds=interval,
        image=status.image if status is not None else None,
        checkedAt=checked,
        nextCheckAt=checked + timedelta(seconds=interval) if checked is not None and auto.enabled else None,
        action=status.action if status is not None else None,
        reason=status.reason if status is not None else None,
        currentTag=decision.current_tag if decision else None,
        currentDigest=decision.current_digest if decision else None,
        targetTag=decision.target_tag if decision else None,
        targetDigest=decision.target_digest if decision else None,
        operationId=status.operation_id if status is not None else None,
        candidates=[
            CandidateOut(tag=c.tag, verdict=c.verdict, code=c.code, reason=c.reason, digest=c.digest)
            for c in (decision.candidates if decision else [])
        ],
        candidatesOmitted=decision.omitted if decision else 0,
        repository=None
        if repo is None
        else RepositoryOut(
            name=repo.repository,
            polledAt=repo.polled_at,
            changedAt=repo.changed_at,
            tagCount=len(repo.tags),
            pages=repo.pages,
            truncated=repo.truncated,
            error=repo.error,
            rateLimitedUntil=repo.blocked_until,
        ),
        badDigests=[
            BadDigestOut(digest=b.digest, reason=b.reason, recordedAt=b.recorded_at, image=b.image)
            for b in sorted(bad.values(), key=lambda b: b.recorded_at, reverse=True)
        ],
    )


ROUTES = [get_auto_update, put_auto_update, auto_update_status]
