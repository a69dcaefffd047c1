"""What the deployment routes, the pages and the CLI do: plain functions over a
database session that return wire structs or raise domain errors.

Writes are deltas (`stacks.changes.Change`) queued as operations: a write to a
deployment that is busy is queued behind the running operation and composes with
it; only a delete already in progress refuses new writes (409). Reads answer from
the database (`reads`; here the env in force, from the config of record), never
from a pulumi process or the cluster.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.accounts.tiers import check_tier_limit
from api.auth.principal import Principal
from api.deployments import repo
from api.deployments.schemas import (
    MAX_REVISION,
    Accepted,
    ConfigResponse,
    CreateRequest,
    CreateResponse,
    DeployImageRequest,
)
from api.deployments.templates import template_or_invalid
from api.deployments.tenancy import can_manage, get_visible_deployment
from api.errors import Conflict, Forbidden, Internal, Invalid, NotFound, RateLimited
from persistence import operations as ops
from persistence import revisions
from persistence.billing import record_billing_event
from persistence.enums import DeploymentStatus, OperationKind
from persistence.models import Deployment
from programs.images import validate_image
from programs.names import generate_name
from programs.spec import KEY_ENV, DeploymentSpec
from programs.templates import fill_generated_env, load_catalog, required_missing, validate_for_template
from programs.validate import validate_env, validate_spec
from stacks import sealing, stackconfig
from stacks.changes import Change
from stacks.settings import Settings

MAX_QUEUED = 50  # operations waiting on one deployment
QUEUE_RETRY_S = 10.0
NAME_ATTEMPTS = 20


def invalid(errors: list[str]) -> Invalid:
    return Invalid("; ".join(errors))


# --- reads (the list, an item and the status are in `reads`) ------------------------


def get_config(db: Session, principal: Principal, name: str, settings: Settings) -> ConfigResponse:
    """The env vars in force, or those of the newest accepted change still queued."""
    deployment_id, stack_config = repo.config_of_record(db, principal, name)
    for sealed in repo.active_payloads(db, deployment_id):
        try:
            payload = sealing.unseal(sealed or {}, settings.engine.passphrase)
        except stackconfig.StackConfigError:
            raise Internal(
                f"The queued configuration of '{name}' cannot be read with this service's passphrase",
                "config_unreadable",
            ) from None
        if "spec" in payload:
            return ConfigResponse(configData=dict(payload["spec"].get("env", {})))
        env = (payload.get("change") or {}).get("env")
        if env is not None:
            return ConfigResponse(configData=dict(env))
    try:
        env = stackconfig.read_value(stack_config, settings.engine.passphrase, KEY_ENV)
    except stackconfig.StackConfigError:
        raise Internal(f"The stored configuration of '{name}' cannot be read", "config_unreadable") from None
    return ConfigResponse(configData=msgspec.json.decode(env or "{}"))


# --- writes ------------------------------------------------------------------------


def managed(db: Session, principal: Principal, name: str) -> Deployment:
    """The deployment, locked for this transaction, if the caller may change it."""
    row = get_visible_deployment(db, principal, name, for_update=True)
    if not can_manage(principal, row):
        raise Forbidden(f"You may not change deployment '{name}'")
    return row


def enqueue_change(
    db: Session, row: Deployment, kind: str, change: Change, message: str, passphrase: str | None = None
) -> Accepted:
    """Queues `change` behind whatever runs on the deployment (its env sealed with
    `passphrase`); 409 while it is being deleted. A restart queued behind another
    restart that has not started is that one (they would do the same), and a
    deployment holds at most MAX_QUEUED waiting operations (429 beyond)."""
    if row.status == DeploymentStatus.DELETING or repo.active_delete(db, row.name):
        raise Conflict(f"Deployment '{row.name}' is being deleted", "deleting")
    queued = repo.queued_operations(db, row)
    if kind == OperationKind.RESTART and queued and queued[0].kind == OperationKind.RESTART:
        return Accepted(success=True, name=row.name, operationId=queued[0].id, status=row.status, message=message)
    if len(queued) >= MAX_QUEUED:
        raise RateLimited(
            f"Deployment '{row.name}' has {len(queued)} operations waiting; retry when they have run",
            retry_after_s=QUEUE_RETRY_S,
            code="queue_full",
        )
    payload = {"change": msgspec.to_builtins(change)}
    op = ops.enqueue(db, row, kind, sealing.seal(payload, passphrase) if passphrase else payload, message)
    return Accepted(success=True, name=row.name, operationId=op.id, status=row.status, message=message)


def spec_for_create(body: CreateRequest | DeployImageRequest, settings: Settings, name: str) -> DeploymentSpec:
    """The spec a create asks for, under `name`."""
    template = "image" if isinstance(body, DeployImageRequest) else body.template
    common: dict[str, Any] = {
        "name": name,
        "tenancy": settings.tenancy.for_template(template),
        "base_domain": settings.service.base_domain,
        "env": dict(body.envVars),
        "visibility": body.visibility,
        "ingress_controller": settings.service.ingress_controller,
    }
    if isinstance(body, DeployImageRequest):
        return DeploymentSpec(template="image", image=body.image, container_port=body.containerPort, **common)
    return DeploymentSpec(template=body.template, **common)


def check_create(body: CreateRequest | DeployImageRequest, settings: Settings) -> None:
    """Everything about a create that needs no database: Invalid names every problem."""
    if isinstance(body, DeployImageRequest) and (error := validate_image(body.image)):
        raise invalid([error])
    template = template_or_invalid("image" if isinstance(body, DeployImageRequest) else body.template)
    probe = spec_for_create(body, settings, body.name if body.name is not None else generate_name())
    errors = validate_spec(probe) + validate_for_template(template, probe)
    if errors:
        raise invalid(errors)


def _free_name(db: Session, wanted: str | None) -> str:
    if wanted is not None:
        if repo.name_taken(db, wanted):
            raise Conflict(f"Deployment name '{wanted}' is already taken", "name_taken")
        return wanted
    for _ in range(NAME_ATTEMPTS):
        candidate = generate_name()
        if not repo.name_taken(db, candidate):
            return candidate
    raise Internal("Could not find a free deployment name; try again")


def create(
    db: Session, principal: Principal, team_id: int | None, body: CreateRequest | DeployImageRequest, settings: Settings
) -> tuple[int, CreateResponse]:
    """Records a new deployment (Pending) and its create operation; bills the create.
    Call `check_create` first, outside the write transaction."""
    template = template_or_invalid("image" if isinstance(body, DeployImageRequest) else body.template)
    check_tier_limit(db, principal, team_id, settings)
    name = _free_name(db, body.name)
    spec = spec_for_create(body, settings, name)
    spec = msgspec.structs.replace(spec, env=fill_generated_env(template, spec.env, secrets.SystemRandom()))
    row = Deployment(
        name=name,
        owner_user_id=principal.user_id,
        team_id=team_id,
        template=template.name,
        image=spec.image,
        visibility=spec.visibility,
        status=DeploymentStatus.PENDING,
        status_message="queued",
        ingresses=[],
    )
    db.add(row)
    try:
        db.flush()
    except IntegrityError:
        raise Conflict(f"Deployment name '{name}' is already taken", "name_taken") from None
    payload = sealing.seal({"spec": msgspec.to_builtins(spec)}, settings.engine.passphrase)
    op = ops.enqueue(db, row, OperationKind.CREATE, payload, f"create {template.name}")
    record_billing_event(
        db, "deployment.created", user_id=principal.user_id, team_id=team_id, deployment_name=name,
        template=template.name,
    )  # fmt: skip
    answer = CreateResponse(
        name=name,
        status=DeploymentStatus.PENDING,
        template=template.name,
        visibility=spec.visibility,
        operationId=op.id,
    )
    return 201, answer


def delete(db: Session, principal: Principal, name: str) -> tuple[int, Accepted]:
    row = managed(db, principal, name)
    running = repo.active_delete(db, name)
    if running:
        return 200, Accepted(
            success=True, name=name, operationId=running, status=DeploymentStatus.DELETING, message="already deleting"
        )
    row.status = DeploymentStatus.DELETING
    row.status_message = "deleting"
    op = ops.enqueue(db, row, OperationKind.DELETE, {}, "delete")
    return 200, Accepted(success=True, name=name, operationId=op.id, status=DeploymentStatus.DELETING, message="delete")


def restart(db: Session, principal: Principal, name: str) -> tuple[int, Accepted]:
    row = managed(db, principal, name)
    # The stamp makes every restart a real change, even two within a second.
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    change = Change(restart_stamp=f"{stamp}.{secrets.randbelow(10**6):06d}Z")
    return 200, enqueue_change(db, row, OperationKind.RESTART, change, "restart")


def check_config(env: dict[str, str]) -> None:
    errors = validate_env(env)
    if errors:
        raise invalid(errors)


def update_config(
    db: Session, principal: Principal, name: str, env: dict[str, str], settings: Settings
) -> tuple[int, Accepted]:
    row = managed(db, principal, name)
    template = load_catalog().get(row.template or "image")
    if template is not None:
        missing = required_missing(template, env)
        if missing:
            raise invalid([f"missing required env vars: {', '.join(missing)}"])
    change = Change(env=dict(env))
    return 200, enqueue_change(db, row, OperationKind.CONFIG, change, "config update", settings.engine.passphrase)


def check_rollback(version: int) -> None:
    if not 1 <= version <= MAX_REVISION:  # beyond, the database's integer overflows
        raise invalid(["version must be a revision number from the history (1 or more)"])


def rollback(db: Session, principal: Principal, name: str, version: int) -> tuple[int, Accepted]:
    row = managed(db, principal, name)
    if revisions.get(db, row.id, version) is None:
        latest = len(revisions.for_deployment(db, row.id))
        known = f"its revisions are 1 to {latest}" if latest else "it has no revisions yet"
        raise NotFound(f"Deployment '{name}' has no revision {version}; {known}", "revision_not_found")
    change = Change(rollback_version=version)
    return 200, enqueue_change(db, row, OperationKind.ROLLBACK, change, f"rollback to revision {version}")
