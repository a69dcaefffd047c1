"""The Litestar application factory.

    create_app(settings=None, *, extra_route_handlers=(), on_startup=(), on_shutdown=())

wires the database (migrated at start-up), authentication, the error format,
OpenAPI (schema at /api/openapi.json, docs UI at /api/docs) and the account routes;
the deployment routes are passed in by their module through `extra_route_handlers`.

Dependencies any route handler may declare by name (annotation aliases in brackets,
from api.auth / api.dependencies):
  db_session: Session             [DbSession] per-request session; commit explicitly
  principal: Principal            [CurrentPrincipal] the authenticated caller
  optional_principal: Principal | None   [OptionalPrincipal] for `auth_optional` routes
  team_context: int | None        [TeamContext] resolved team context (see api.tenancy)
  settings: Settings              [AppSettings]

Every route needs credentials unless its handler has `opt={"public": True}`.

`app.state` holds settings, engine, session_factory and write_session_factory
(SQLite `BEGIN IMMEDIATE`), for start-up hooks such as the operation worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread
from litestar import Litestar, MediaType, Request, Response, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler
from sqlalchemy import Engine, text

from api import keys, login
from api.admin import AdminController
from api.auth import (
    PUBLIC,
    SESSION_COOKIE,
    AuthMiddleware,
    provide_optional_principal,
    provide_principal,
    provide_team_context,
)
from api.dependencies import provide_db_session, provide_settings
from api.errors import EXCEPTION_HANDLERS, ErrorBody, error_response, error_responses
from api.ratelimit import RateLimiter
from api.schemas_auth import Health
from persistence.db import make_engine, migrate, session_factory
from stacks.settings import Settings

DOCS_PATH = "/api/docs"
SCHEMA_PATH = "/api/openapi.json"


@get("/api/health", opt={PUBLIC: True}, tags=["service"], security=[{}], responses=error_responses(503))
async def health(state: State) -> Health:
    """Liveness and database reachability (503 if the database is down)."""
    engine: Engine = state.engine

    def ping() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    await anyio.to_thread.run_sync(ping)
    return Health(status="ok")


@get(SCHEMA_PATH, opt={PUBLIC: True}, include_in_schema=False, media_type=MediaType.JSON)
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return request.app.openapi_schema.to_schema()


def _docs_404_as_json(response: Response[Any]) -> Response[Any]:
    """Litestar answers unknown paths under the docs router with an HTML page; keep one error shape."""
    if response.status_code == 404:
        return error_response(404, "not_found", "Not found")
    return response


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="shipstack",
        version="0.1.0",
        description=(
            "Deploy templates and container images onto Kubernetes. Authenticate with "
            "`Authorization: Bearer ssk_...` (API key) or the session cookie from "
            "`POST /api/auth/login` (writes then need the `X-CSRF-Token` header). "
            'Every error is `{"error": "...", "code": "..."}`.'
        ),
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="ssk_ API key",
                    description="API key: `Authorization: Bearer ssk_...`",
                ),
                "cookie": SecurityScheme(
                    type="apiKey",
                    name=SESSION_COOKIE,
                    security_scheme_in="cookie",
                    description="Session cookie set by POST /api/auth/login",
                ),
            }
        ),
        security=[{"bearer": []}, {"cookie": []}],
        render_plugins=[SwaggerRenderPlugin(path="/")],
        openapi_router=Router(
            DOCS_PATH,
            route_handlers=[],
            include_in_schema=False,
            opt={PUBLIC: True},
            after_request=_docs_404_as_json,
        ),
    )


def _ensure_sqlite_dir(engine: Engine) -> None:
    # The default database lives in the data folder, which a fresh checkout lacks.
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)


def create_app(
    settings: Settings | None = None,
    *,
    extra_route_handlers: Sequence[ControllerRouterHandler] = (),
    on_startup: Sequence[Callable[..., Any]] = (),
    on_shutdown: Sequence[Callable[..., Any]] = (),
    template_config: TemplateConfig[Any] | None = None,
) -> Litestar:
    settings = settings or Settings.from_env()
    engine = make_engine(settings.service.database_url)
    state = State(
        {
            "settings": settings,
            "engine": engine,
            "session_factory": session_factory(engine),
            "write_session_factory": session_factory(engine, immediate=True),
            "rate_limiter": RateLimiter(settings.auth.rate_limit_per_minute, 60.0),
            "login_limiter": RateLimiter(settings.auth.login_max_attempts, settings.auth.login_window_s),
        }
    )

    def migrate_database() -> None:
        _ensure_sqlite_dir(engine)
        migrate(engine)

    return Litestar(
        route_handlers=[
            health,
            openapi_json,
            *login.ROUTES,
            *keys.ROUTES,
            AdminController,
            *extra_route_handlers,
        ],
        middleware=[AuthMiddleware()],
        dependencies={
            "db_session": Provide(provide_db_session),
            "principal": Provide(provide_principal),
            "optional_principal": Provide(provide_optional_principal),
            "team_context": Provide(provide_team_context),
            "settings": Provide(provide_settings),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=_openapi_config(),
        template_config=template_config,
        state=state,
        # Migrations first, so the caller's hooks (workers) find the schema ready.
        on_startup=[migrate_database, *on_startup],
        on_shutdown=[*on_shutdown, engine.dispose],
        debug=False,
    )


__all__ = ["DOCS_PATH", "SCHEMA_PATH", "ErrorBody", "create_app"]
