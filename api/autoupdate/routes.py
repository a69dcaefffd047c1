"""Auto-update routes (the contract's "Auto-Update Configuration", plus an
explanation of the scheduler's last decision): HTTP only.

    GET /api/deployments/auto-update?name=           the settings in force
    PUT /api/deployments/auto-update                 change them (queued, like every write)
    GET /api/deployments/{name}/auto-update/status   last poll, candidates and why
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import msgspec
from litestar import MediaType, Request, Response, get, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery

from api.auth.guards import CurrentPrincipal, require_scope
from api.auth.principal import READ, WRITE
from api.autoupdate import service
from api.autoupdate.schemas import AutoUpdateAccepted, AutoUpdatePut, StatusOut
from api.deployments.idempotency import HEADER, IdempotentRequest
from api.deployments.schemas import AutoUpdateSettings
from api.deployments.writes import submit
from api.errors import Invalid
from api.http.dependencies import AppDatabase, AppRunner, AppSettings, DbSession
from api.http.document import BODY
from api.http.errors import error_responses

ERRORS = error_responses(400, 401, 403, 404, 429, 500)


@get("/api/deployments/auto-update", guards=[require_scope(READ)], sync_to_thread=True, responses=ERRORS)
def get_auto_update(
    principal: CurrentPrincipal, db_session: DbSession, settings: AppSettings, name: FromQuery[str]
) -> AutoUpdateSettings:
    """The auto-update settings in force, or those of the newest change still queued."""
    return service.get_settings(db_session, principal, name, settings)


def _decode(raw: bytes) -> AutoUpdatePut:
    try:
        return msgspec.json.decode(raw, type=AutoUpdatePut)
    except msgspec.ValidationError as exc:
        raise Invalid(f"Invalid request body: {exc}") from None
    except msgspec.DecodeError:
        raise Invalid("Request body must be a JSON object") from None


@put(
    "/api/deployments/auto-update",
    guards=[require_scope(WRITE)],
    status_code=200,
    opt={BODY: {"application/json": AutoUpdatePut}},
    responses={
        200: ResponseSpec(AutoUpdateAccepted, description="Accepted", generate_examples=False),
        **error_responses(409),
        **ERRORS,
    },
)
async def put_auto_update(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    database: AppDatabase,
    runner: AppRunner,
    settings: AppSettings,
) -> Response[AutoUpdateAccepted]:
    """`{"deployment_name", "enabled", "strategy"?, "policy"?, "include"?, "exclude"?,
    "intervalSeconds"?, "prerelease"?}`; queued as an operation, answered at once."""
    body = _decode(await request.body())
    service.check(body)  # the fields given, before anything is looked up; merged again in the transaction
    key = request.headers.get(HEADER)
    replay = None
    if key is not None:
        raw = msgspec.json.encode(msgspec.to_builtins(body))
        replay = IdempotentRequest(key=key, method="PUT", path=request.url.path, body=raw, team_id=None)

    def run() -> Response[Any]:
        result = submit(
            database.writes, runner.notify, principal, lambda db: service.update(db, principal, body), replay
        )
        return Response(content=result.body, status_code=result.status, media_type=MediaType.JSON)

    return await anyio.to_thread.run_sync(run)


@get(
    "/api/deployments/{name:str}/auto-update/status",
    guards=[require_scope(READ)],
    sync_to_thread=True,
    responses=ERRORS,
)
def auto_update_status(
    principal: CurrentPrincipal, db_session: DbSession, settings: AppSettings, name: FromPath[str]
) -> StatusOut:
    """The scheduler's last decision for the deployment: every candidate tag and why it
    was chosen or rejected, the repository's last poll, and digests never retried."""
    return service.status(db_session, principal, name, settings)


ROUTES = [get_auto_update, put_auto_update, auto_update_status]
