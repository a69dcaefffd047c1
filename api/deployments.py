"""The deployment routes of `../shared/spec/deployments-api.txt`, plus templates,
history, rollback, preview and operations.

Writes validate everything first (bad input never reaches Pulumi), then in one
transaction record the deployment row and a queued operation, and answer at
once; the runner carries the operation out. A write to a deployment that is
busy is queued behind the running operation (changes are deltas, so they
compose in order); only a delete already in progress refuses new writes (409).
Reads answer from the database (and the stack's config file for env values),
never from a pulumi process or the cluster.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
import msgspec
from litestar import MediaType, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api import idempotency
from api.auth import CurrentPrincipal, TeamContext
from api.deployment_schemas import (
    Accepted,
    ConfigResponse,
    ConfigUpdateRequest,
    CreateRequest,
    CreateResponse,
    DeployImageRequest,
    DeploymentItem,
    HistoryResponse,
    IngressOut,
    NameRequest,
    OperationOut,
    OperationsResponse,
    PreviewRequest,
    PreviewResponse,
    RevisionOut,
    RollbackRequest,
    StatusResponse,
    StepOut,
    TemplateOut,
    TemplateServiceOut,
    TemplatesResponse,
)
from api.errors import ApiError, not_found
from api.principal import READ, WRITE, Principal
from api.tenancy import can_manage, can_view, get_visible_deployment, resolve_team_context, visible_deployments_filter
from api.tiers import check_tier_limit
from persistence import operations as ops
from persistence.billing import record_billing_event
from persistence.models import Deployment, Operation
from programs.images import validate_image
from programs.names import generate_name
from programs.spec import DeploymentSpec
from programs.templates import fill_generated_env, load_catalog, required_missing, validate_for_template
from programs.validate import validate_env, validate_spec
from stacks import engine, stackconfig
from stacks.changes import Change, apply_change
from stacks.settings import Settings

MAX_WAIT_S = 60
NAME_ATTEMPTS = 20


# --- helpers ------------------------------------------------------------------


def _need(principal: Principal, scope: str) -> None:
    if not principal.has_scope(scope):
        raise ApiError(403, "forbidden", f"This credential lacks the {scope} scope")


def _ingresses(row: Deployment) -> list[IngressOut]:
    return [msgspec.convert(i, IngressOut) for i in row.ingresses or []]


def _item(principal: Principal, row: Deployment) -> DeploymentItem:
    return DeploymentItem(
        name=row.name,
        status=row.status,
        template=row.template or "image",
        visibility=row.visibility,
        ingresses=_ingresses(row) if row.status == "Ready" else [],
        canDelete=can_manage(principal, row) and row.status != "Deleting",
        lastError=row.last_error if row.status == "Error" else None,
        image=row.image,
        teamId=row.team_id,
    )


def _status(row: Deployment) -> StatusResponse:
    ready = row.status == "Ready"
    return StatusResponse(
        status=row.status,
        deploymentReady=ready,
        allowDelete=row.status != "Deleting",
        # A new deployment request is welcome when the last one failed; while an
        # operation is pending or running, or all is Ready, there is nothing to ask.
        allowRequest=row.status == "Error",
        ingresses=_ingresses(row) if ready else [],
        statusMessage=row.last_error if row.status == "Error" else row.status_message,
    )


def _bad(errors: list[str]) -> ApiError:
    return ApiError(400, "invalid_input", "; ".join(errors))


def _state(request: Request) -> tuple[Settings, sessionmaker[Session], Any]:
    """Settings, the read session factory and the operation runner."""
    st: State = request.app.state
    return st.settings, st.session_factory, st.runner


def _json_response(status: int, body: msgspec.Struct | bytes) -> Response:
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    return Response(content=raw, status_code=status, media_type=MediaType.JSON)


def _write(
    request: Request,
    principal: CurrentPrincipal,
    body: msgspec.Struct | dict,
    action: Callable[[Session], tuple[int, msgspec.Struct]],
) -> Response:
    """Runs a write in one transaction, honouring Idempotency-Key, then wakes the runner."""
    _need(principal, WRITE)
    _, _, runner = _state(request)
    # SQLite: BEGIN IMMEDIATE, so read-then-write (name checks, tier counts) cannot race.
    sessions: sessionmaker[Session] = request.app.state.write_session_factory
    key = request.headers.get(idempotency.HEADER)
    raw_body = msgspec.json.encode(body)
    with sessions() as db, db.begin():
        try:
            digest = idempotency.check(db, principal.user_id, key, request.method, request.url.path, raw_body)
        except idempotency.Replay as replay:
            return _json_response(replay.status_code, replay.body)
        status, out = action(db)
        encoded = msgspec.json.encode(out)
        if key and digest:
            idempotency.remember(db, principal.user_id, key, digest, request.method, request.url.path, status, encoded)
    runner.notify()
    return _json_response(status, encoded)


def _enqueue(db: Session, row: Deployment, kind: str, payload: dict[str, Any], message: str) -> Accepted:
    active = db.scalar(
        select(Operation.id).where(
            Operation.deployment_name == row.name, Operation.kind == "delete", Operation.status.in_(ops.ACTIVE)
        )
    )
    if row.status == "Deleting" or active:
        raise ApiError(409, "deleting", f"Deployment '{row.name}' is being deleted")
    op = ops.enqueue(db, row, kind, payload, message)
    return Accepted(success=True, name=row.name, operationId=op.id, status=row.status, message=message)


def _managed(db: Session, principal: Principal, name: str) -> Deployment:
    row = get_visible_deployment(db, principal, name, for_update=True)
    if not can_manage(principal, row):
        raise ApiError(403, "forbidden", f"You may not change deployment '{name}'")
    return row


# --- templates ----------------------------------------------------------------


@get("/api/templates", sync_to_thread=False)
def list_templates(principal: CurrentPrincipal) -> TemplatesResponse:
    _need(principal, READ)
    out = []
    for t in sorted(load_catalog().values(), key=lambda t: t.name):
        services = [
            TemplateServiceOut(
                name=s.name,
                image=s.image,
                port=s.port,
                public=s.public,
                defaultEnv=dict(s.env),
                requiredEnv=list(s.required_env),
            )
            for s in t.services
        ]
        out.append(TemplateOut(name=t.name, description=t.description, services=services))
    return TemplatesResponse(templates=out)


# --- list, create, deploy-image -------------------------------------------------


@get("/api/deployments", sync_to_thread=True)
def list_deployments(
    request: Request, principal: CurrentPrincipal, team_context: TeamContext
) -> list[DeploymentItem]:
    _need(principal, READ)
    _, sessions, _ = _state(request)
    with sessions() as db:
        query = select(Deployment).where(visible_deployments_filter(principal, team_context))
        rows = db.scalars(query.order_by(Deployment.created_at)).all()
        return [_item(principal, r) for r in rows]


def _create(
    request: Request,
    principal: CurrentPrincipal,
    body: CreateRequest | DeployImageRequest,
    header_team: int | None,
    spec_for: Callable[[str], DeploymentSpec],
    template_name: str,
) -> Response:
    settings, _, _ = _state(request)
    catalog = load_catalog()
    template = catalog.get(template_name)
    if template is None:
        raise _bad([f"unknown template {template_name!r}; available: {', '.join(sorted(catalog))}"])
    team_id = resolve_team_context(principal, body.team_id) if body.team_id is not None else header_team
    probe = spec_for(body.name if body.name is not None else generate_name())
    errors = validate_spec(probe) + validate_for_template(template, probe)
    if errors:
        raise _bad(errors)

    def action(db: Session) -> tuple[int, CreateResponse]:
        check_tier_limit(db, principal, team_id, settings)
        name = body.name
        if name is None:
            for _ in range(NAME_ATTEMPTS):
                candidate = generate_name()
                if db.scalar(select(Deployment.id).where(Deployment.name == candidate)) is None:
                    name = candidate
                    break
            else:
                raise ApiError(500, "internal_error", "Could not find a free deployment name; try again")
        elif db.scalar(select(Deployment.id).where(Deployment.name == name)) is not None:
            raise ApiError(409, "name_taken", f"Deployment name '{name}' is already taken")
        spec = spec_for(name)
        spec = msgspec.structs.replace(spec, env=fill_generated_env(template, spec.env, secrets.SystemRandom()))
        row = Deployment(
            name=name,
            owner_user_id=principal.user_id,
            team_id=team_id,
            template=template.name,
            image=spec.image,
            visibility=spec.visibility,
            status="Pending",
            status_message="queued",
            ingresses=[],
        )
        db.add(row)
        try:
            db.flush()
        except IntegrityError:
            raise ApiError(409, "name_taken", f"Deployment name '{name}' is already taken") from None
        op = ops.enqueue(db, row, "create", {"spec": msgspec.to_builtins(spec)}, f"create {template.name}")
        record_billing_event(
            db, "deployment.created", user_id=principal.user_id, team_id=team_id, deployment_name=name,
            template=template.name,
        )  # fmt: skip
        return 201, CreateResponse(
            name=name, status="Pending", template=template.name, visibility=spec.visibility, operationId=op.id
        )

    return _write(request, principal, body, action)


@post("/api/deployments", sync_to_thread=True, status_code=201)
def create_deployment(
    request: Request, principal: CurrentPrincipal, team_context: TeamContext, data: JSONBody[CreateRequest]
) -> Response:
    settings, _, _ = _state(request)

    def spec_for(name: str) -> DeploymentSpec:
        return DeploymentSpec(
            name=name,
            template=data.template,
            base_domain=settings.base_domain,
            env=dict(data.envVars),
            visibility=data.visibility,  # type: ignore[arg-type] - validated by validate_spec
            ingress_controller=settings.ingress_controller,
        )

    return _create(request, principal, data, team_context, spec_for, data.template)


@post("/api/deployments/deploy-image", sync_to_thread=True, status_code=201)
def deploy_image(
    request: Request, principal: CurrentPrincipal, team_context: TeamContext, data: JSONBody[DeployImageRequest]
) -> Response:
    settings, _, _ = _state(request)
    error = validate_image(data.image)
    if error:
        raise _bad([error])

    def spec_for(name: str) -> DeploymentSpec:
        return DeploymentSpec(
            name=name,
            template="image",
            base_domain=settings.base_domain,
            image=data.image,
            container_port=data.containerPort,
            env=dict(data.envVars),
            visibility=data.visibility,  # type: ignore[arg-type]
            ingress_controller=settings.ingress_controller,
        )

    return _create(request, principal, data, team_context, spec_for, "image")


# --- status -------------------------------------------------------------------


@get("/api/deployments/status")
async def deployment_status(
    request: Request,
    principal: CurrentPrincipal,
    name: Annotated[str, QueryParameter(description="Deployment name")],
    wait: Annotated[int, QueryParameter(ge=0, le=MAX_WAIT_S, description="Long-poll seconds")] = 0,
) -> StatusResponse:
    """With `wait=N`, answers as soon as the status changes, or after N seconds."""
    _need(principal, READ)
    _, sessions, _ = _state(request)

    def read() -> StatusResponse:
        with sessions() as db:
            return _status(get_visible_deployment(db, principal, name))

    first = await anyio.to_thread.run_sync(read)
    deadline = asyncio.get_running_loop().time() + wait
    current = first
    while wait and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.5)
        try:
            current = await anyio.to_thread.run_sync(read)
        except ApiError:
            break  # deleted while waiting: the last known status stands
        if current.status != first.status or current.statusMessage != first.statusMessage:
            break
    return current


# --- delete, restart, config ----------------------------------------------------


@post("/api/deployments/delete", status_code=200)
async def delete_deployment(request: Request, principal: CurrentPrincipal) -> Response:
    """JSON in, JSON out; an HTML form post is redirected to the deployments page."""
    is_form = request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    )
    if is_form:
        form = await request.form()
        name = str(form.get("deployment_name") or "")
    else:
        try:
            name = msgspec.json.decode(await request.body(), type=NameRequest).deployment_name
        except msgspec.ValidationError as exc:
            raise ApiError(400, "invalid_input", f"Invalid request body: {exc}") from None
        except msgspec.DecodeError:
            raise ApiError(400, "invalid_input", "Request body must be JSON: {\"deployment_name\": \"...\"}") from None
    if not name:
        raise ApiError(400, "invalid_input", "deployment_name is required")

    def action(db: Session) -> tuple[int, Accepted]:
        row = _managed(db, principal, name)
        active_delete = db.scalar(
            select(Operation.id).where(
                Operation.deployment_name == name, Operation.kind == "delete", Operation.status.in_(ops.ACTIVE)
            )
        )
        if active_delete:
            return 200, Accepted(
                success=True, name=name, operationId=active_delete, status="Deleting", message="already deleting"
            )
        row.status = "Deleting"
        row.status_message = "deleting"
        op = ops.enqueue(db, row, "delete", {}, "delete")
        return 200, Accepted(success=True, name=name, operationId=op.id, status="Deleting", message="delete")

    response = await anyio.to_thread.run_sync(lambda: _write(request, principal, {"deployment_name": name}, action))
    if is_form:
        return Redirect(path="/deployments", status_code=303)
    return response


@post("/api/deployments/restart", sync_to_thread=True, status_code=200)
def restart_deployment(request: Request, principal: CurrentPrincipal, data: JSONBody[NameRequest]) -> Response:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def action(db: Session) -> tuple[int, Accepted]:
        row = _managed(db, principal, data.deployment_name)
        # The stamp makes every restart a real change, even two within a second.
        unique = f"{stamp[:-1]}.{secrets.randbelow(10**6):06d}Z"
        change = Change(restart_stamp=unique)
        return 200, _enqueue(db, row, "restart", {"change": msgspec.to_builtins(change)}, "restart")

    return _write(request, principal, data, action)


@get("/api/deployments/config", sync_to_thread=True)
def get_config(
    request: Request, principal: CurrentPrincipal, name: Annotated[str, QueryParameter(description="Deployment name")]
) -> ConfigResponse:
    """The env vars in force, or those of the newest accepted change still queued."""
    _need(principal, READ)
    settings, sessions, _ = _state(request)
    with sessions() as db:
        get_visible_deployment(db, principal, name)
        pending = db.scalars(
            select(Operation)
            .where(Operation.deployment_name == name, Operation.status.in_(ops.ACTIVE))
            .order_by(Operation.created_at.desc())
        ).all()
    for op in pending:
        payload = op.payload or {}
        if "spec" in payload:
            return ConfigResponse(configData=dict(payload["spec"].get("env", {})))
        env = (payload.get("change") or {}).get("env")
        if env is not None:
            return ConfigResponse(configData=dict(env))
    try:
        config = stackconfig.read(settings, name)
    except stackconfig.StackConfigError as exc:
        raise ApiError(500, "config_unreadable", str(exc)) from None
    if not config:
        return ConfigResponse(configData={})
    return ConfigResponse(configData=msgspec.json.decode(config.get("shipstack:env", "{}")))


@put("/api/deployments/config", sync_to_thread=True, status_code=200)
def put_config(request: Request, principal: CurrentPrincipal, data: JSONBody[ConfigUpdateRequest]) -> Response:
    errors = validate_env(data.configData)
    if errors:
        raise _bad(errors)

    def action(db: Session) -> tuple[int, Accepted]:
        row = _managed(db, principal, data.deployment_name)
        template = load_catalog().get(row.template or "image")
        if template is not None:
            missing = required_missing(template, data.configData)
            if missing:
                raise _bad([f"missing required env vars: {', '.join(missing)}"])
        change = Change(env=dict(data.configData))
        return 200, _enqueue(db, row, "config", {"change": msgspec.to_builtins(change)}, "config update")

    return _write(request, principal, data, action)


# --- history, rollback, preview --------------------------------------------------


def _visible_or_404(request: Request, principal: Principal, name: str) -> Deployment:
    _, sessions, _ = _state(request)
    with sessions() as db:
        return get_visible_deployment(db, principal, name)


@get("/api/deployments/{name:str}/history", sync_to_thread=True)
def deployment_history(request: Request, principal: CurrentPrincipal, name: FromPath[str]) -> HistoryResponse:
    _need(principal, READ)
    settings, _, _ = _state(request)
    _visible_or_404(request, principal, name)
    try:
        revisions = engine.history(settings, name)
    except Exception as exc:
        raise ApiError(503, "engine_unavailable", f"Could not read the stack history: {exc}") from None
    return HistoryResponse(
        revisions=[
            RevisionOut(
                version=r.version,
                kind=r.kind,
                result=r.result,
                message=r.message,
                startTime=r.start_time,
                endTime=r.end_time,
                resourceChanges=r.resource_changes,
                config=r.config,
            )
            for r in reversed(revisions)
        ]
    )


@post("/api/deployments/{name:str}/rollback", sync_to_thread=True, status_code=200)
def rollback(
    request: Request, principal: CurrentPrincipal, name: FromPath[str], data: JSONBody[RollbackRequest]
) -> Response:
    if data.version < 1:
        raise _bad(["version must be a revision number from the history (1 or more)"])

    def action(db: Session) -> tuple[int, Accepted]:
        row = _managed(db, principal, name)
        change = Change(rollback_version=data.version)
        return 200, _enqueue(
            db, row, "rollback", {"change": msgspec.to_builtins(change)}, f"rollback to revision {data.version}"
        )

    return _write(request, principal, data, action)


@post("/api/deployments/{name:str}/preview", sync_to_thread=True, status_code=200)
def preview(
    request: Request, principal: CurrentPrincipal, name: FromPath[str], data: JSONBody[PreviewRequest]
) -> PreviewResponse:
    _need(principal, WRITE)
    settings, sessions, _ = _state(request)
    errors = []
    if data.configData is not None:
        errors += validate_env(data.configData)
    if data.image is not None and (e := validate_image(data.image)):
        errors.append(e)
    if errors:
        raise _bad(errors)
    with sessions() as db:
        _managed(db, principal, name)
    current = engine.current_spec(settings, name)
    if current is None:
        raise ApiError(409, "not_created", f"Deployment '{name}' has not been created in the cluster yet")
    change = Change(env=data.configData, image=data.image, visibility=data.visibility)
    target = apply_change(current, change, load_catalog().get(current.template))
    errors = validate_spec(target)
    if errors:
        raise _bad(errors)
    try:
        result = engine.preview(settings, target)
    except engine.EngineError as exc:
        raise ApiError(503, "engine_error", str(exc)) from None
    return PreviewResponse(
        changes=result.changes,
        steps=[StepOut(op=s.op, type=s.type, name=s.name, diffs=list(s.diffs)) for s in result.steps],
        podsWillRoll=result.pods_roll,
    )


# --- operations -----------------------------------------------------------------


def _op_out(op: Operation, *, with_progress: bool) -> OperationOut:
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


@get("/api/deployments/{name:str}/operations", sync_to_thread=True)
def deployment_operations(request: Request, principal: CurrentPrincipal, name: FromPath[str]) -> OperationsResponse:
    _need(principal, READ)
    _, sessions, _ = _state(request)
    with sessions() as db:
        get_visible_deployment(db, principal, name)
        return OperationsResponse(operations=[_op_out(o, with_progress=False) for o in ops.for_deployment(db, name)])


@get("/api/operations/{op_id:str}", sync_to_thread=True)
def get_operation(request: Request, principal: CurrentPrincipal, op_id: FromPath[str]) -> OperationOut:
    _need(principal, READ)
    _, sessions, _ = _state(request)
    with sessions() as db:
        op = ops.get(db, op_id)
        if op is None or not can_view(principal, op):
            raise not_found(f"Operation '{op_id}' not found")
        return _op_out(op, with_progress=True)


ROUTES = [
    list_templates,
    list_deployments,
    create_deployment,
    deploy_image,
    deployment_status,
    delete_deployment,
    restart_deployment,
    get_config,
    put_config,
    deployment_history,
    rollback,
    preview,
    deployment_operations,
    get_operation,
]
