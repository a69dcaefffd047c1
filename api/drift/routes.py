"""Drift routes: HTTP only.

    GET  /api/deployments/{name}/drift          settings, the last check, the next one
    PUT  /api/deployments/{name}/drift          change the settings (queued, like every write)
    POST /api/deployments/{name}/drift-check    compare the cluster with the stack, now (queued)
    POST /api/deployments/{name}/reconcile      apply the spec again over drift, as a revision (queued)

The last check also shows in `GET /api/deployments/status` and the list (`drift`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
from litestar import Request, Response, get, post, put
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from sqlalchemy.orm import Session

from api.auth.guards import CurrentPrincipal, require_scope
from api.auth.principal import READ, WRITE, Principal
from api.deployments.routes import accepted, errors, run_write
from api.deployments.schemas import Accepted
from api.drift import service
from api.drift.schemas import DriftSettingsAccepted, DriftSettingsPut, DriftStatusOut
from api.http.dependencies import AppDatabase, AppRunner, AppSettings, DbSession


@get("/api/deployments/{name:str}/drift", guards=[require_scope(READ)], sync_to_thread=True,
     responses=errors(404, 500))  # fmt: skip
def get_drift(
    principal: CurrentPrincipal, db_session: DbSession, settings: AppSettings, name: FromPath[str]
) -> DriftStatusOut:
    """The drift settings in force (or those of a change still queued), the last check
    (each drifted object's kind, name and differing fields, never a value) and when
    the scheduler will queue the next one."""
    return service.status(db_session, principal, name, settings)


@put("/api/deployments/{name:str}/drift", guards=[require_scope(WRITE)], status_code=200,
     responses={200: ResponseSpec(DriftSettingsAccepted, description="Accepted: the operation that applies the "
                                  "settings", generate_examples=False), **errors(404, 409, 500)})  # fmt: skip
async def put_drift(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    database: AppDatabase,
    runner: AppRunner,
    settings: AppSettings,
    name: FromPath[str],
    data: JSONBody[DriftSettingsPut],
) -> Response[DriftSettingsAccepted]:
    """`{"policy": "report"|"reconcile", "intervalSeconds": N|null}`, either or both:
    reconcile applies the spec again after a check finds drift; `intervalSeconds` null
    follows the service's SHIPSTACK_DRIFT_INTERVAL, 0 never checks on a schedule."""
    service.check_body(data)
    return await anyio.to_thread.run_sync(
        lambda: run_write(
            request, principal, database, runner, data, lambda db: service.update_settings(db, principal, name, data)
        )
    )


QueuedAction = Callable[[Session, Principal, str], tuple[int, Accepted]]


def _queued(path: str, action: QueuedAction, title: str, description: str) -> HTTPRouteHandler:
    """A POST that queues one operation on the deployment, with no body: a check or a reconcile."""

    def handler(
        request: Request[Any, Any, Any],
        principal: CurrentPrincipal,
        database: AppDatabase,
        runner: AppRunner,
        name: FromPath[str],
    ) -> Response[Accepted]:
        return run_write(request, principal, database, runner, {"name": name}, lambda db: action(db, principal, name))

    handler.__name__ = handler.__qualname__ = title.lower().replace(" ", "_")  # the OpenAPI operationId
    return post(path, guards=[require_scope(WRITE)], status_code=200, sync_to_thread=True, summary=title,
                description=description, responses={**accepted(200), **errors(404, 409)})(handler)  # fmt: skip


drift_check = _queued(
    "/api/deployments/{name:str}/drift-check",
    service.check,
    "Drift check",
    "Compare every object of the deployment in the cluster with the stack's state (Pulumi's refresh, "
    "previewed: nothing changes). Queued behind any running operation; the result lands in "
    "`GET /api/deployments/{name}/drift` and the status.",
)
reconcile = _queued(
    "/api/deployments/{name:str}/reconcile",
    service.reconcile,
    "Reconcile",
    "Apply the current spec again after reading every object back from the cluster, so edits made behind "
    'the service\'s back are undone and deleted objects come back: a new revision whose message starts "reconcile:".',
)


ROUTES = [get_drift, put_drift, drift_check, reconcile]
