"""Operation routes: HTTP only.

GET /api/operations/{id}                 status, result, timing and engine progress
GET /api/deployments/{name}/operations   the deployment's recent operations
GET /api/operations/{id}/events          text/event-stream of the engine's events
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import get
from litestar.background_tasks import BackgroundTask
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter
from litestar.response import Stream

from api.auth.guards import CurrentPrincipal, require_scope
from api.auth.principal import READ
from api.http.dependencies import AppDatabase, AppRunner, DbSession
from api.http.errors import error_responses
from api.http.sse import SSE_HEADERS
from api.operations import service, stream
from api.operations.schemas import OperationOut, OperationsResponse, OperationStreamEvent

READS = [require_scope(READ)]
ERRORS = error_responses(400, 401, 403, 404, 429)


@get("/api/operations/{op_id:str}", guards=READS, sync_to_thread=True, responses=ERRORS)
def get_operation(principal: CurrentPrincipal, db_session: DbSession, op_id: FromPath[str]) -> OperationOut:
    """One operation: status, result, timing and the engine's progress."""
    return service.get_operation(db_session, principal, op_id)


@get("/api/deployments/{name:str}/operations", guards=READS, sync_to_thread=True, responses=ERRORS)
def deployment_operations(
    principal: CurrentPrincipal, db_session: DbSession, name: FromPath[str]
) -> OperationsResponse:
    """The deployment's 50 most recent operations, newest first."""
    return service.deployment_operations(db_session, principal, name)


@get(
    "/api/operations/{op_id:str}/events",
    guards=READS,
    media_type="text/event-stream",
    responses={
        200: ResponseSpec(
            OperationStreamEvent,
            description="Server-Sent Events: the engine's events, then `end`",
            media_type="text/event-stream",
            generate_examples=False,
        ),
        **ERRORS,
    },
)
async def operation_events(
    principal: CurrentPrincipal,
    database: AppDatabase,
    runner: AppRunner,
    op_id: FromPath[str],
    last_event_id: Annotated[
        str | None, HeaderParameter(name="Last-Event-ID", required=False, pattern=stream.EVENT_ID_PATTERN)
    ] = None,
) -> Stream:
    """The operation's engine events as Server-Sent Events, ending when it ends."""
    after = stream.resume_after(last_event_id)
    # Subscribe before reading the stored progress, so no event falls in between.
    live = runner.subscribe(op_id)

    def unsubscribe() -> None:
        runner.unsubscribe(op_id, live)  # idempotent

    try:
        first = await anyio.to_thread.run_sync(stream.read_snapshot, database.reads, principal, op_id)
    except BaseException:
        unsubscribe()
        raise
    return Stream(
        stream.events(database.reads, principal, op_id, first, after, live, unsubscribe),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        background=BackgroundTask(_unsubscribe_async, unsubscribe),
    )


async def _unsubscribe_async(unsubscribe: Any) -> None:
    unsubscribe()


ROUTES = [get_operation, deployment_operations, operation_events]
