"""Drift routes: HTTP only.

    GET  /api/deployments/{name}/drift          settings, the last check, the next one
    PUT  /api/deployments/{name}/drift          change the settings (queued, like every write)
    POST /api/deployments/{name}/drift-check    compare the cluster with the stack, now (queued)
    POST /api/deployments/{name}/reconcile      apply the spec again over drift, as a revision (queued)

The last check also shows in `GET /api/deployments/status` and the list (`drift`).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request, Response, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from api.auth.guards import CurrentPrincipal, require_scope
from api.auth.principal import READ, WRITE
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
    stack = await anyio.to_thread.run_sync(service.stack_settings, settings, name)
    return await anyio.to_thread.run_sync(
        lambda: run_write(
            request, principal, database, runner, data,
            lambda db: service.update_settings(db, principal, name, data, stack),
        )
    )  # fmt: skip


@post("/api/deployments/{name:str}/drift-check", guards=[require_scope(WRITE)], status_code=200,
      sync_to_thread=True, responses={**accepted(200), **errors(404, 409)})  # fmt: skip
def drift_check(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    database: AppDatabase,
    runner: AppRunner,
    name: FromPath[str],
) -> Response[Accepted]:
    """Compare every object of the deployment in the cluster with the stack's state
    (Pulumi's refresh, previewed: nothing changes). Queued behind any running
    operation; the result lands in `GET /api/deployments/{name}/drift`."""
    return run_write(request, principal, database, runner, {"name": name},
                     lambda db: service.check(db, principal, name))  # fmt: skip


@post("/api/deployments/{name:str}/reconcile", guards=[require_scope(WRITE)], status_code=200,
      sync_to_thread=True, responses={**accepted(200), **errors(404, 409)})  # fmt: skip
def reconcile(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    database: AppDatabase,
    runner: AppRunner,
    name: FromPath[str],
) -> Response[Accepted]:
    """Apply the current spec again after reading every object back from the cluster,
    so edits made behind the service's back are undone and deleted objects come back;
    a new revision whose message starts "reconcile:"."""
    return run_write(request, principal, database, runner, {"name": name},
                     lambda db: service.reconcile(db, principal, name))  # fmt: skip


ROUTES = [get_drift, put_drift, drift_check, reconcile]
