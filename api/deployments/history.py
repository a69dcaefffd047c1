"""A deployment's revisions and a preview of a change: the reads that run the engine.

Revisions are the service's record of every Pulumi update (`persistence.revisions`,
written with the update's result), shown in the API's words: each one's spec in the
shape the API takes and returns (env keys, never values), not raw `shipstack:*`
config keys. A preview runs the engine (its route runs it in `api.http.engine_work`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import msgspec
from sqlalchemy.orm import Session

from api.auth.principal import Principal
from api.deployments.schemas import (
    AutoUpdateSettings,
    HistoryResponse,
    PreviewRequest,
    PreviewResponse,
    RevisionOut,
    RevisionSpec,
    StepOut,
)
from api.deployments.service import invalid
from api.deployments.tenancy import can_manage, get_visible_deployment
from api.errors import Conflict, Forbidden, Unavailable
from persistence import revisions
from programs.images import validate_image
from programs.spec import (
    KEY_ENV,
    KEY_ENV_KEYS,
    SPEC_CONFIG_KEYS,
    AutoUpdate,
    DeploymentSpec,
    SpecConfigError,
    config_to_spec,
)
from programs.templates import load_catalog
from programs.validate import validate_env, validate_spec
from stacks import engine, stackconfig
from stacks.changes import Change, apply_change
from stacks.settings import Settings

log = logging.getLogger("shipstack.api.history")
# Every key of the spec but the env, whose keys `envKeys` lists in plain text.
PLAIN_SPEC_KEYS = tuple(k for k in SPEC_CONFIG_KEYS if k != KEY_ENV)


def auto_update_settings(auto: AutoUpdate, strategy: str) -> AutoUpdateSettings:
    return AutoUpdateSettings(
        enabled=auto.enabled,
        strategy=strategy,
        policy=auto.policy,
        include=auto.include,
        exclude=auto.exclude,
        intervalSeconds=auto.interval_s,
        prerelease=auto.prerelease,
    )


def revision_spec(config: Mapping[str, str]) -> RevisionSpec | None:
    """A revision's config (secrets masked) as the API's spec shape, or None when it
    does not read as a spec."""
    try:
        # The env is masked in history; its keys are kept in plain text beside it.
        spec: DeploymentSpec = config_to_spec({**config, KEY_ENV: "{}"})
    except SpecConfigError:
        return None
    try:
        env_keys = sorted(msgspec.json.decode(config.get(KEY_ENV_KEYS) or "[]", type=list[str]))
    except (msgspec.DecodeError, msgspec.ValidationError):
        env_keys = []
    return RevisionSpec(
        template=spec.template,
        image=spec.image,
        containerPort=spec.container_port,
        envKeys=env_keys,
        visibility=spec.visibility,
        replicas=spec.replicas,
        strategy=spec.strategy,
        autoUpdate=auto_update_settings(spec.auto_update, spec.strategy),
        restartedAt=spec.restart_stamp,
    )


def history(db: Session, principal: Principal, name: str, settings: Settings) -> HistoryResponse:
    """Every revision, newest first, numbered from 1 (the oldest): read from the
    database, no pulumi process."""
    row = get_visible_deployment(db, principal, name)
    return HistoryResponse(
        revisions=[
            RevisionOut(
                version=r.number,
                kind="update",
                result=r.result,
                message=r.message,
                startTime=r.started_at,
                endTime=r.finished_at,
                resourceChanges=r.resource_changes,
                spec=revision_spec(stackconfig.read_plain(r.config, PLAIN_SPEC_KEYS)),
            )
            for r in revisions.for_deployment(db, row.id)
        ]
    )


def check_preview(data: PreviewRequest) -> None:
    errors = validate_env(data.configData) if data.configData is not None else []
    if data.image is not None and (error := validate_image(data.image)):
        errors.append(error)
    if errors:
        raise invalid(errors)


class PreparedPreview(msgspec.Struct, frozen=True):
    """What a preview runs: the changed spec and the config of record it starts from."""

    name: str
    target: DeploymentSpec
    config: str


def prepare_preview(
    db: Session, principal: Principal, name: str, data: PreviewRequest, settings: Settings
) -> PreparedPreview:
    """Everything of a preview before the engine: the caller may change the deployment,
    it exists in the cluster, the change is valid. Reads only, without a lock: the
    preview changes nothing, so nothing needs holding while the engine runs."""
    check_preview(data)
    row = get_visible_deployment(db, principal, name)
    if not can_manage(principal, row):
        raise Forbidden(f"You may not change deployment '{name}'")
    current = engine.spec_of(row.stack_config, settings.engine.passphrase)
    if current is None or row.stack_config is None:
        raise Conflict(f"Deployment '{name}' has not been created in the cluster yet", "not_created")
    change = Change(env=data.configData, image=data.image, visibility=data.visibility)
    target = apply_change(current, change, load_catalog().get(current.template))
    errors = validate_spec(target)
    if errors:
        raise invalid(errors)
    return PreparedPreview(name=name, target=target, config=row.stack_config)


def run_preview(settings: Settings, prepared: PreparedPreview) -> PreviewResponse:
    """The exact diff the change would make, changing nothing: one `pulumi preview`."""
    try:
        result = engine.preview(settings, prepared.target, prepared.config)
    except engine.EngineError:
        log.exception("preview of %s failed", prepared.name)
        raise Unavailable("The engine could not compute the preview; retry later", "engine_error") from None
    return PreviewResponse(
        changes=result.changes,
        steps=[StepOut(op=s.op, type=s.type, name=s.name, diffs=list(s.diffs)) for s in result.steps],
        podsWillRoll=result.pods_roll,
    )
