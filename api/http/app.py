"""The application factory: the whole service as one Litestar app.

`build_app(settings)` wires the database (migrated at start-up), authentication,
the error format, OpenAPI (schema at /api/openapi.json, docs UI at /api/docs),
every feature's routes and the pages, and, unless `run_operations=False` (an
API-only process), starts the operation runner's workers and the auto-update
scheduler.

Every route needs credentials unless its handler has `opt={"public": True}`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import ControllerRouterHandler
from sqlalchemy import Engine

from api.accounts.routes import AdminController
from api.auth import routes as auth_routes
from api.auth.cookies import cookie_names
from api.auth.guards import provide_optional_principal, provide_principal, provide_team_context
from api.auth.middleware import PUBLIC, AuthMiddleware
from api.auth.ratelimit import RateLimiter
from api.auth.schemas import Health
from api.autoupdate import routes as autoupdate_routes
from api.deployments import routes as deployment_routes
from api.drift import routes as drift_routes
from api.http.context import STATE_KEY, AppContext, Database, context_of
from api.http.dependencies import DEPENDENCIES
from api.http.document import finished_document
from api.http.engine_work import EngineWork
from api.http.errors import EXCEPTION_HANDLERS, error_responses
from api.http.openapi import DOCS_PATH, SCHEMA_PATH, openapi_config
from api.http.options import answer_options
from api.http.strict import check_json_body, check_query
from api.observe import metrics_routes
from api.observe import routes as observe_routes
from api.observe.routes import close_kube
from api.operations import routes as operation_routes
from api.pages import routes as pages
from persistence import workers as worker_leases
from persistence.db import make_engine, migrate, session_factory
from scheduler.failures import RollbackOnFailure
from scheduler.jobs import AutoUpdateScheduler
from stacks.exclusive import claim_sqlite_workers, release_sqlite_workers
from stacks.runner import Runner
from stacks.settings import Settings


@get("/api/health", opt={PUBLIC: True}, tags=["service"], security=[{}], responses=error_responses(503))
async def health(state: State) -> Health:
    """Liveness and database reachability (503 if the database is down), and how many
    processes run operations (`workers`, on every host; 0 means accepted writes wait)."""
    reads = context_of(state).db.reads

    def count_workers() -> int:
        with reads() as db:
            return worker_leases.count_live(db)

    return Health(status="ok", workers=await anyio.to_thread.run_sync(count_workers))


@get(SCHEMA_PATH, opt={PUBLIC: True}, include_in_schema=False, media_type=MediaType.JSON)
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return finished_document(request.app).to_schema()


async def before_request(request: Request[Any, Any, Any]) -> Response[None] | None:
    """OPTIONS answered with every method of the path; queries and JSON bodies read
    strictly; the document finished before a docs page renders it."""
    if request.url.path.startswith(DOCS_PATH):
        finished_document(request.app)
    answer = await answer_options(request)
    if answer is None:
        check_query(request)
        await check_json_body(request)
    return answer


def _ensure_sqlite_dir(engine: Engine) -> None:
    # The default database lives in the data folder, which a fresh checkout lacks.
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)


ROUTES: Sequence[ControllerRouterHandler] = (
    health,
    openapi_json,
    *auth_routes.ROUTES,
    AdminController,
    *deployment_routes.ROUTES,
    *operation_routes.ROUTES,
    *autoupdate_routes.ROUTES,
    *drift_routes.ROUTES,
    *observe_routes.ROUTES,
    *metrics_routes.ROUTES,
    *pages.ROUTES,
)


def pool_options(settings: Settings) -> dict[str, int]:
    """Enough pooled connections for everything that may hold one at once: request
    threads (anyio's 40, the engine pool's few), the runner's workers and heartbeat, the
    scheduler. SQLAlchemy's default (5 kept, 10 more) made the 16th request wait for a
    connection and opened and closed one per request beyond the 5th. SQLite keeps them
    all (a file handle each); PostgreSQL keeps 10 and opens the rest when needed."""
    wanted = 40 + settings.service.previews + settings.service.workers + 4
    if settings.service.database_url.startswith("sqlite"):
        return {"pool_size": wanted, "max_overflow": 0, "pool_timeout": 60}
    return {"pool_size": 10, "max_overflow": wanted - 10}


def build_app(
    settings: Settings,
    *,
    run_operations: bool | None = None,
    wake_workers: Callable[[], None] | None = None,
    extra_route_handlers: Sequence[ControllerRouterHandler] = (),
) -> Litestar:
    """`run_operations=False` serves the API without workers or the auto-update
    scheduler (another process runs them); by default the role decides
    (SHIPSTACK_ROLE: `all` runs them, `api` does not). `wake_workers` is called
    whenever a write is accepted: it wakes another process's workers."""
    if run_operations is None:
        run_operations = settings.service.role == "all"
    engine = make_engine(settings.service.database_url, **pool_options(settings))
    writes = session_factory(engine, immediate=True)
    runner = Runner(settings, writes, on_failed=RollbackOnFailure(settings, writes), wake_elsewhere=wake_workers)
    context = AppContext(
        settings=settings,
        db=Database(engine=engine, reads=session_factory(engine), writes=writes),
        runner=runner,
        rate_limiter=RateLimiter(settings.auth.rate_limit_per_minute, 60.0),
        login_limiter=RateLimiter(settings.auth.login_max_attempts, settings.auth.login_window_s),
        engine_work=EngineWork(settings.service.previews, per_user=1),
    )

    def migrate_database() -> None:
        _ensure_sqlite_dir(engine)
        migrate(engine)

    def start_work() -> None:
        context.scheduler = AutoUpdateScheduler(settings, engine, notify=runner.notify)
        if run_operations:
            claim_sqlite_workers(engine)
            runner.start()
            context.scheduler.start()  # leads only while it holds the scheduler lease

    def stop_work() -> None:
        if context.scheduler is not None:
            context.scheduler.stop()
        runner.stop()
        context.engine_work.shutdown()
        release_sqlite_workers()

    def settle_memory() -> None:
        """What starting made (modules, the app, the engine's SDK) lives as long as the
        process: out of the collector's reach. Otherwise each full collection walks
        some 200,000 objects, a 100 ms pause in whichever request is running (the p99
        of the deployments list)."""
        gc.collect()
        gc.freeze()

    async def close_cluster_client() -> None:
        await close_kube(context)

    app = Litestar(
        route_handlers=[*ROUTES, *extra_route_handlers],
        middleware=[AuthMiddleware()],
        dependencies={
            **DEPENDENCIES,
            "principal": Provide(provide_principal),
            "optional_principal": Provide(provide_optional_principal),
            "team_context": Provide(provide_team_context),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=before_request,
        openapi_config=openapi_config(cookie_names(settings.auth.session_cookie_secure).session),
        template_config=pages.template_config(),
        state=State({STATE_KEY: context}),
        # Migrations first, so the workers find the schema ready.
        on_startup=[migrate_database, start_work, settle_memory],
        on_shutdown=[stop_work, close_cluster_client, engine.dispose],
        debug=False,
    )
    return app
