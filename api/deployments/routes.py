"""The deployment routes of the API contract (docs/api.md), plus templates,
history, rollback and preview: HTTP only (parse, call the service, shape the answer).

    GET  /api/templates
    GET  /api/deployments                       POST /api/deployments
    POST /api/deployments/deploy-image          GET  /api/deployments/status?name=&wait=
    POST /api/deployments/delete                POST /api/deployments/restart
    GET  /api/deployments/config?name=          PUT  /api/deployments/config
    GET  /api/deployments/{name}/history        POST /api/deployments/{name}/rollback
    POST /api/deployments/{name}/preview

Writes answer at once with the operation that carries them out; `Idempotency-Key`
on any write replays the first answer.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import anyio.to_thread
import msgspec
from litestar import MediaType, Request, Response, get, post, put
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect
from sqlalchemy.orm import Session

from api.auth.guards import CurrentPrincipal, TeamContext, require_scope
from api.auth.middleware import FORM_TYPES
from api.auth.principal import READ, WRITE, Principal
from api.deployments import cursor as deployment_cursor
from api.deployments import history as history_service
from api.deployments import reads, service, templates
from api.deployments.idempotency import HEADER, IdempotentRequest
from api.deployments.schemas import (
    Accepted,
    ConfigResponse,
    ConfigUpdateRequest,
    CreateRequest,
    CreateResponse,
    DeleteForm,
    DeployImageRequest,
    DeploymentItem,
    HistoryResponse,
    NameRequest,
    PreviewRequest,
    PreviewResponse,
    RollbackRequest,
    StatusResponse,
    TemplatesResponse,
)
from api.deployments.tenancy import resolve_team_context
from api.deployments.writes import Action, submit
from api.errors import Invalid
from api.http.context import Database
from api.http.dependencies import AppDatabase, AppEngineWork, AppRunner, AppSettings, DbSession
from api.http.document import BODY
from api.http.errors import ErrorBody, error_responses
from stacks.runner import Runner
from stacks.settings import Settings

NameQuery = Annotated[str, QueryParameter(description="Deployment name")]
READS = [require_scope(READ)]
WRITES = [require_scope(WRITE)]


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """What a deployment route documents: its own statuses, and what every
    authenticated route can answer (bad input, credentials, scope, rate limit)."""
    return error_responses(*sorted({400, 401, 403, 429, *statuses}))


def accepted(status: int, body: type[Any] = Accepted) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            body, description="Accepted: the operation that carries the write out", generate_examples=False
        )
    }


def run_write(
    request: Request[Any, Any, Any],
    principal: Principal,
    database: Database,
    runner: Runner,
    body: msgspec.Struct | dict[str, Any],
    action: Action,
    team_id: int | None = None,
) -> Response[Any]:
    """Runs a write's `action` with its Idempotency-Key (if any) and answers its JSON;
    the write routes of other features (api/drift) answer through it too."""
    key = request.headers.get(HEADER)
    replay = None
    if key is not None:
        replay = IdempotentRequest(
            key=key, method=request.method, path=request.url.path, body=msgspec.json.encode(body), team_id=team_id
        )
    result = submit(database.writes, runner.notify, principal, action, replay)
    return Response(content=result.body, status_code=result.status, media_type=MediaType.JSON)


# --- reads ---------------------------------------------------------------------------


@get("/api/templates", guards=READS, sync_to_thread=False, responses=errors())
def list_templates() -> TemplatesResponse:
    """The catalog: each template's services, images, ports and env vars."""
    return templates.list_templates()


LimitQuery = Annotated[
    int | None, QueryParameter(ge=1, le=reads.MAX_LIMIT, description="At most this many, and a `Link` to the rest")
]
CursorQuery = Annotated[str | None, QueryParameter(description="Where a page starts: from the previous page's `Link`")]
NEXT_LINK = ResponseHeader(
    name="Link",
    documentation_only=True,
    description='With `limit`, when more deployments follow: `<URL>; rel="next"`, the URL of the next page '
    "(this request's with its `cursor`); absent on the last page.",
)


# Async, its blocking part in one thread hop: a sync handler that shares its path with
# a handler registered after it is wrapped for a thread twice by Litestar, and then
# cannot return a Response.
@get("/api/deployments", guards=READS, responses=errors(), response_headers=[NEXT_LINK])
async def list_deployments(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    team_context: TeamContext,
    database: AppDatabase,
    settings: AppSettings,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> Response[list[DeploymentItem]]:
    """Every deployment the caller can see (or one team's, with `team_id` / `X-Team-Id`), oldest first;
    with `limit`, a page of them, the next one linked in the `Link` header."""
    passphrase = settings.engine.passphrase
    after = deployment_cursor.decode(cursor, passphrase) if cursor is not None else None

    def read() -> reads.Page:
        with database.reads() as db:
            return reads.list_page(db, principal, team_context, limit=limit, after=after)

    page = await anyio.to_thread.run_sync(read)
    headers = {}
    if page.next_after is not None:
        url = next_page_url(request, deployment_cursor.encode(page.next_after, passphrase))
        headers["Link"] = f'<{url}>; rel="next"'
    return Response(content=page.body, media_type=MediaType.JSON, headers=headers)


def next_page_url(request: Request[Any, Any, Any], cursor: str) -> str:
    """This request's URL with `cursor` in place of its own (the team context and limit kept)."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"] + [("cursor", cursor)]
    return str(request.url.with_replacements(query=urlencode(query)))


@get("/api/deployments/status", guards=READS, responses=errors(404))
async def deployment_status(
    principal: CurrentPrincipal,
    database: AppDatabase,
    name: NameQuery,
    wait: Annotated[int, QueryParameter(ge=0, le=reads.MAX_WAIT_S, description="Long-poll seconds")] = 0,
) -> StatusResponse:
    """With `wait=N`, answers as soon as the status changes, or after N seconds."""

    def read() -> StatusResponse:
        with database.reads() as db:
            return reads.status(db, principal, name)

    first = await anyio.to_thread.run_sync(read)
    return await reads.wait_for_change(read, first, wait)


@get("/api/deployments/config", guards=READS, sync_to_thread=True, responses=errors(404, 500))
def get_config(
    principal: CurrentPrincipal, db_session: DbSession, settings: AppSettings, name: NameQuery
) -> ConfigResponse:
    """The env vars in force, or those of the newest accepted change still queued."""
    return service.get_config(db_session, principal, name, settings)


@get("/api/deployments/{name:str}/history", guards=READS, sync_to_thread=True, responses=errors(404, 503))
def deployment_history(
    principal: CurrentPrincipal, db_session: DbSession, settings: AppSettings, name: FromPath[str]
) -> HistoryResponse:
    """Every revision, newest first, with the spec it ran (env keys, never values)."""
    return history_service.history(db_session, principal, name, settings)


PREVIEW_BUSY = ResponseSpec(
    ErrorBody,
    description="Too many previews at once: the server runs a few at a time (SHIPSTACK_PREVIEWS) and one per "
    "user; or the caller's rate limit. Retry after `Retry-After` seconds.",
    generate_examples=False,
)


@post("/api/deployments/{name:str}/preview", guards=WRITES, status_code=200,
      responses={**errors(404, 409, 503), 429: PREVIEW_BUSY})  # fmt: skip
async def preview(
    principal: CurrentPrincipal,
    database: AppDatabase,
    settings: AppSettings,
    engine_work: AppEngineWork,
    name: FromPath[str],
    data: JSONBody[PreviewRequest],
) -> PreviewResponse:
    """The exact diff a change of env, image or visibility would make; nothing changes. Each preview runs
    a pulumi process: a few at a time per server, one per user, 429 beyond."""

    def run() -> PreviewResponse:
        with database.reads() as db:
            prepared = history_service.prepare_preview(db, principal, name, data, settings)
        return history_service.run_preview(settings, prepared)

    # Not in anyio's thread pool, which every read shares: engine-bound work has its own.
    return await engine_work.run(principal.user_id, run)


# --- writes ---------------------------------------------------------------------------


@post("/api/deployments", guards=WRITES, status_code=201, sync_to_thread=True,
      responses={**accepted(201, CreateResponse), **errors(409)})  # fmt: skip
def create_deployment(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    team_context: TeamContext,
    database: AppDatabase,
    runner: AppRunner,
    settings: AppSettings,
    data: JSONBody[CreateRequest],
) -> Response[CreateResponse]:
    """Deploy a template; answered at once with the create operation."""
    return _create(request, principal, team_context, database, runner, settings, data)


@post("/api/deployments/deploy-image", guards=WRITES, status_code=201, sync_to_thread=True,
      responses={**accepted(201, CreateResponse), **errors(409)})  # fmt: skip
def deploy_image(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    team_context: TeamContext,
    database: AppDatabase,
    runner: AppRunner,
    settings: AppSettings,
    data: JSONBody[DeployImageRequest],
) -> Response[CreateResponse]:
    """Deploy a raw container image; answered at once with the create operation."""
    return _create(request, principal, team_context, database, runner, settings, data)


def _create(
    request: Request[Any, Any, Any],
    principal: Principal,
    header_team: int | None,
    database: Database,
    runner: Runner,
    settings: Settings,
    data: CreateRequest | DeployImageRequest,
) -> Response[Any]:
    team_id = resolve_team_context(principal, data.team_id) if data.team_id is not None else header_team
    service.check_create(data, settings)

    def action(db: Session) -> tuple[int, msgspec.Struct]:
        return service.create(db, principal, team_id, data, settings)

    return run_write(request, principal, database, runner, data, action, team_id)


@post("/api/deployments/delete", guards=WRITES, status_code=200,
      opt={BODY: {"application/json": NameRequest, "application/x-www-form-urlencoded": DeleteForm}},
      responses={**accepted(200), **errors(404, 409),
                 303: ResponseSpec(None, description="A form post: back to the deployments page")})  # fmt: skip
async def delete_deployment(
    request: Request[Any, Any, Any], principal: CurrentPrincipal, database: AppDatabase, runner: AppRunner
) -> Response[Accepted]:
    """`{"deployment_name": ...}` as JSON; an HTML form post is redirected to the deployments page."""
    is_form = request.headers.get("content-type", "").startswith(FORM_TYPES)
    if is_form:
        form = await request.form()
        name = str(form.get("deployment_name") or "")
    else:
        try:
            name = msgspec.json.decode(await request.body(), type=NameRequest).deployment_name
        except msgspec.ValidationError as exc:
            raise Invalid(f"Invalid request body: {exc}") from None
        except msgspec.DecodeError:
            raise Invalid('Request body must be JSON: {"deployment_name": "..."}') from None
    if not name:
        raise Invalid("deployment_name is required")

    def action(db: Session) -> tuple[int, msgspec.Struct]:
        return service.delete(db, principal, name)

    body = {"deployment_name": name}
    response = await anyio.to_thread.run_sync(lambda: run_write(request, principal, database, runner, body, action))
    if is_form:
        return Redirect(path="/deployments", status_code=303)
    return response


@post("/api/deployments/restart", guards=WRITES, status_code=200, sync_to_thread=True,
      responses={**accepted(200), **errors(404, 409)})  # fmt: skip
def restart_deployment(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    database: AppDatabase,
    runner: AppRunner,
    data: JSONBody[NameRequest],
) -> Response[Accepted]:
    """Roll every pod of the deployment, as a revision."""
    return run_write(
        request, principal, database, runner, data, lambda db: service.restart(db, principal, data.deployment_name)
    )


@put("/api/deployments/config", guards=WRITES, status_code=200, sync_to_thread=True,
     responses={**accepted(200), **errors(404, 409)})  # fmt: skip
def put_config(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    database: AppDatabase,
    runner: AppRunner,
    settings: AppSettings,
    data: JSONBody[ConfigUpdateRequest],
) -> Response[Accepted]:
    """Replace the env vars (the template's generated secrets are kept)."""
    service.check_config(data.configData)
    return run_write(
        request, principal, database, runner, data,
        lambda db: service.update_config(db, principal, data.deployment_name, data.configData, settings),
    )  # fmt: skip


@post("/api/deployments/{name:str}/rollback", guards=WRITES, status_code=200, sync_to_thread=True,
      responses={**accepted(200), **errors(404, 409)})  # fmt: skip
def rollback(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    database: AppDatabase,
    runner: AppRunner,
    name: FromPath[str],
    data: JSONBody[RollbackRequest],
) -> Response[Accepted]:
    """Apply exactly the config revision N ran with, as a new revision."""
    service.check_rollback(data.version)
    return run_write(
        request, principal, database, runner, data, lambda db: service.rollback(db, principal, name, data.version)
    )


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
]
