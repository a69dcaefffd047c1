"""Web pages for people: sign in, the deployments list, create, and a deployment's page.

    GET /                        -> /deployments
    GET /login?next=             sign-in form (posts to POST /api/auth/login)
    GET /deployments?team_id=    the caller's deployments (or one team's), live status
    GET /deploy?team_id=         create from a template (its required env vars as fields) or an image
    GET /deployments/{name}      status, ingresses, operation progress, config editor with
                                 preview, restart, auto-update, logs, metrics, events,
                                 history with rollback, delete
    GET /static/...              shipstack.js and shipstack.css (no front-end build)

The pages are Jinja templates (`api/templates_html`) rendered by Litestar's template
support, and they hold no second implementation of anything: what a page shows at
first is read server-side by calling the JSON routes' own handler functions
(`handler.fn`, with the page's request and principal), and everything after that,
every write included, is the browser calling the JSON API with the session cookie
and the `X-CSRF-Token` header (`static/shipstack.js`). The one plain HTML form that
posts to the API itself is delete (`POST /api/deployments/delete`, `_csrf` field),
which redirects back to the list; sign-out posts to `POST /api/auth/logout?next=/login`.

Every page route is `auth_optional`: without a session it redirects to /login.
Pages are sent with `Cache-Control: no-store` (the config editor holds env values)
and a Content-Security-Policy that allows only this origin's script and style.

Wiring (in the app factory): `template_config=pages.template_config()` and
`*pages.ROUTES` among the route handlers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import anyio.to_thread
from litestar import Request, Response, get
from litestar.enums import MediaType
from litestar.params import FromPath, FromQuery
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api import autoupdate, deployments
from api.auth import AUTH_OPTIONAL, CSRF_FORM_FIELD, PUBLIC, OptionalPrincipal, resolve_team_context
from api.errors import ApiError
from api.login import _safe_next
from api.principal import READ, WRITE, Principal
from persistence.accounts import get_team
from programs.spec import STRATEGIES, UPDATE_POLICIES, VISIBILITIES
from programs.templates import load_catalog

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates_html"
STATIC_DIR = HERE / "static"
STATIC_PATH = "/static"

LOGS_STREAM_ROUTE = "/api/deployments/{name:str}/logs/stream"
METRICS_ROUTE = "/api/deployments/{name:str}/metrics"
EVENTS_ROUTE = "/api/deployments/{name:str}/events"
OPERATION_EVENTS_ROUTE = "/api/operations/{op_id:str}/events"

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
}


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Litestar's template config for the pages (pass as `Litestar(template_config=...)`)."""
    return TemplateConfig(directory=TEMPLATES_DIR, engine=JinjaTemplateEngine)


# --- helpers ------------------------------------------------------------------------


def _login_redirect(request: Request[Any, Any, Any]) -> Redirect:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/login?{urlencode({'next': target})}", status_code=303)


def _has_route(request: Request[Any, Any, Any], path: str) -> bool:
    """Whether the app serves `path` (the observe routes may not be registered)."""
    return any(isinstance(r, HTTPRoute) and r.path == path for r in request.app.routes)


def _teams(principal: Principal, request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    """The caller's teams with their names, for the team selectors."""
    ids = sorted(principal.accessible_team_ids)
    if not ids:
        return []
    with request.app.state.session_factory() as db:
        out = []
        for team_id in ids:
            team = get_team(db, team_id)
            label = team.name if team else f"team {team_id}"
            out.append({"id": team_id, "name": label, "role": principal.teams[team_id]})
        return out


def _page(
    request: Request[Any, Any, Any],
    principal: Principal | None,
    template_name: str,
    *,
    title: str,
    status_code: int = 200,
    **context: Any,
) -> Template:
    context.update(
        title=title,
        principal=principal,
        csrf_token=(principal.csrf_token or "") if principal else "",
        csrf_field=CSRF_FORM_FIELD,
        can_write=bool(principal and principal.has_scope(WRITE)),
        path=request.url.path,
    )
    return Template(template_name=template_name, context=context, status_code=status_code, headers=PAGE_HEADERS)


def _error_page(request: Request[Any, Any, Any], principal: Principal | None, exc: ApiError) -> Template:
    return _page(
        request, principal, "error.html", title="Error", status_code=exc.status_code,
        status=exc.status_code, message=exc.detail,
    )  # fmt: skip


def _need_read(principal: Principal) -> None:
    if not principal.has_scope(READ):
        raise ApiError(403, "forbidden", f"This credential lacks the {READ} scope")


def _templates_for_form(principal: Principal) -> list[dict[str, Any]]:
    """The catalog as `GET /api/templates` answers it, plus what the form needs to know."""
    catalog = load_catalog()
    out = []
    for t in deployments.list_templates.fn(principal=principal).templates:
        if t.name == "image":  # the raw-image template is the other form
            continue
        source = catalog.get(t.name)
        generated = sorted({k for s in source.services for k in s.generated_secrets}) if source else []
        required = sorted({k for s in t.services for k in s.requiredEnv})
        defaults = {k: v for s in t.services for k, v in s.defaultEnv.items()}
        out.append(
            {
                "name": t.name,
                "description": t.description,
                "services": [s.name for s in t.services],
                "images": [s.image for s in t.services],
                "required": required,
                "generated": [k for k in generated if k not in required],
                "defaults": defaults,
            }
        )
    return out


# --- routes -------------------------------------------------------------------------


def _page_route() -> dict[str, Any]:
    """Route options of every page: signed-in optional (anonymous -> /login), not in the API schema."""
    return {"opt": {AUTH_OPTIONAL: True}, "include_in_schema": False, "media_type": MediaType.HTML}


@get("/", **_page_route())
async def home(optional_principal: OptionalPrincipal) -> Redirect:
    return Redirect("/deployments" if optional_principal else "/login", status_code=303)


@get("/login", **_page_route())
async def login_page(
    request: Request[Any, Any, Any], optional_principal: OptionalPrincipal, next: FromQuery[str | None] = None
) -> Response[Any]:
    target = _safe_next(next) or "/deployments"
    if optional_principal is not None and optional_principal.via == "session":
        return Redirect(target, status_code=303)
    return _page(request, None, "login.html", title="Sign in", next=target)


@get("/deployments", **_page_route())
async def list_page(
    request: Request[Any, Any, Any], optional_principal: OptionalPrincipal, team_id: FromQuery[str | None] = None
) -> Response[Any]:
    principal = optional_principal
    if principal is None:
        return _login_redirect(request)
    try:
        _need_read(principal)
        team = resolve_team_context(principal, team_id)
        items = await anyio.to_thread.run_sync(
            lambda: deployments.list_deployments.fn(request=request, principal=principal, team_context=team)
        )
        teams = await anyio.to_thread.run_sync(_teams, principal, request)
    except ApiError as exc:
        return _error_page(request, principal, exc)
    return _page(
        request, principal, "list.html", title="Deployments",
        items=items, teams=teams, team_id=team,
        api_list_url="/api/deployments" + (f"?team_id={team}" if team is not None else ""),
    )  # fmt: skip


@get("/deploy", **_page_route())
async def create_page(
    request: Request[Any, Any, Any], optional_principal: OptionalPrincipal, team_id: FromQuery[str | None] = None
) -> Response[Any]:
    principal = optional_principal
    if principal is None:
        return _login_redirect(request)
    try:
        _need_read(principal)
        team = resolve_team_context(principal, team_id)
        templates = _templates_for_form(principal)
        teams = await anyio.to_thread.run_sync(_teams, principal, request)
    except ApiError as exc:
        return _error_page(request, principal, exc)
    return _page(
        request, principal, "create.html", title="New deployment",
        templates=templates, teams=teams, team_id=team, visibilities=VISIBILITIES,
    )  # fmt: skip


@get("/deployments/{name:str}", **_page_route())
async def detail_page(
    request: Request[Any, Any, Any],
    optional_principal: OptionalPrincipal,
    name: FromPath[str],
    op: FromQuery[str | None] = None,
) -> Response[Any]:
    principal = optional_principal
    if principal is None:
        return _login_redirect(request)
    try:
        _need_read(principal)
        status = await deployments.deployment_status.fn(request=request, principal=principal, name=name, wait=0)
        items = await anyio.to_thread.run_sync(
            lambda: deployments.list_deployments.fn(request=request, principal=principal, team_context=None)
        )
    except ApiError as exc:
        return _error_page(request, principal, exc)
    item = next((i for i in items if i.name == name), None)
    if item is None:
        return _error_page(request, principal, ApiError(404, "not_found", f"Deployment '{name}' not found"))
    config: dict[str, str] = {}
    config_error = None
    auto = None
    auto_error = None
    try:
        config = (await anyio.to_thread.run_sync(
            lambda: deployments.get_config.fn(request=request, principal=principal, name=name)
        )).configData  # fmt: skip
    except ApiError as exc:
        config_error = exc.detail
    try:
        auto = await anyio.to_thread.run_sync(
            lambda: autoupdate.get_auto_update.fn(request=request, principal=principal, name=name)
        )
    except ApiError as exc:
        auto_error = exc.detail
    template = load_catalog().get(item.template)
    services = [s.name for s in template.services] if template else []
    return _page(
        request, principal, "detail.html", title=f"Deployment {name}",
        name=name, item=item, status=status, config=config, config_error=config_error,
        auto=auto, auto_error=auto_error, strategies=STRATEGIES, policies=UPDATE_POLICIES,
        services=services, operation_id=op or "",
        has_logs=_has_route(request, LOGS_STREAM_ROUTE),
        has_metrics=_has_route(request, METRICS_ROUTE),
        has_events=_has_route(request, EVENTS_ROUTE),
        has_op_events=_has_route(request, OPERATION_EVENTS_ROUTE),
        quoted_name=quote(name, safe=""),
    )  # fmt: skip


static_files = create_static_files_router(
    path=STATIC_PATH, directories=[STATIC_DIR], name="pages-static", opt={PUBLIC: True}, include_in_schema=False
)

ROUTES = [home, login_page, list_page, create_page, detail_page, static_files]
