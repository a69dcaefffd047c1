"""Web pages for people: sign in, the deployments list, create, and a deployment's page.

    GET /                        -> /deployments
    GET /login?next=             sign-in form (posts to POST /api/auth/login)
    GET /deployments?team_id=    the caller's deployments (or one team's), live status
    GET /deploy?team_id=         create from a template (its required env vars as fields) or an image
    GET /deployments/{name}      status, ingresses, operation progress, config editor with
                                 preview, restart, auto-update, logs, metrics, events,
                                 history with rollback, delete
    GET /static/...              the scripts and shipstack.css (no front-end build): shipstack.js,
                                 pages/*.js, detail/*.js (one per section), charts.js

The pages are Jinja templates (`api/pages/templates`) rendered by Litestar's template
support, and they hold no second implementation of anything: what a page shows at
first is read server-side by the service functions the JSON routes call
(`api.pages.views`), and everything after that, every write included, is the browser
calling the JSON API with the session cookie and the `X-CSRF-Token` header
(`static/shipstack.js`, which the page scripts share as `window.Shipstack`). Scripts
are plain classic files loaded with `defer` in order (base.html, then each template's
`scripts` block), as the Content-Security-Policy `script-src 'self'` allows: no inline
script or style. The one plain HTML form that posts to the API itself is delete
(`POST /api/deployments/delete`, `_csrf` field), which redirects back to the list;
sign-out posts to `POST /api/auth/logout?next=/login`.

Every page route is `auth_optional`: without a session it redirects to /login.
Everything the pages and static files send carries the security headers of
`api.pages.headers` (pages also `Cache-Control: no-store`: the config editor holds
env values). The sign-in page sets the pre-session login token (`api.auth.cookies`)
its form posts back.

"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import anyio.to_thread
from litestar import Request, Response, get
from litestar.enums import MediaType
from litestar.params import FromPath, FromQuery
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from sqlalchemy.orm import Session

from api.auth.cookies import LOGIN_TOKEN_TTL_S, cookie_names, is_login_token, make_cookie, new_login_token
from api.auth.guards import OptionalPrincipal
from api.auth.middleware import AUTH_OPTIONAL, CSRF_FORM_FIELD, PUBLIC
from api.auth.principal import WRITE, Principal
from api.auth.sessions import safe_next
from api.errors import ServiceError
from api.http.dependencies import AppDatabase, AppSettings
from api.http.errors import status_of
from api.pages import views
from api.pages.headers import PAGE_HEADERS, STATIC_HEADERS, SecurityHeaders

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STATIC_PATH = "/static"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Litestar's template config for the pages (pass as `Litestar(template_config=...)`)."""
    return TemplateConfig(directory=TEMPLATES_DIR, engine=JinjaTemplateEngine)


def _login_redirect(request: Request[Any, Any, Any]) -> Redirect:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/login?{urlencode({'next': target})}", status_code=303)


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
    return Template(template_name=template_name, context=context, status_code=status_code)


async def _render(
    request: Request[Any, Any, Any],
    principal: Principal | None,
    database: Any,
    template_name: str,
    title: str,
    view: Callable[[Session, Principal], dict[str, Any]],
) -> Response[Any]:
    """The page, or /login without a session, or the error page for a domain error."""
    if principal is None:
        return _login_redirect(request)

    def read() -> dict[str, Any]:
        with database.reads() as db:
            return view(db, principal)

    try:
        context = await anyio.to_thread.run_sync(read)
    except ServiceError as exc:
        status = status_of(exc)
        return _page(request, principal, "error.html", title="Error", status_code=status, status=status,
                     message=exc.message)  # fmt: skip
    return _page(request, principal, template_name, title=title, **context)


def _page_route() -> dict[str, Any]:
    """Route options of every page: signed-in optional (anonymous -> /login), not in the API schema."""
    return {
        "opt": {AUTH_OPTIONAL: True},
        "include_in_schema": False,
        "media_type": MediaType.HTML,
        "middleware": [SecurityHeaders(PAGE_HEADERS)],
    }


@get("/", **_page_route())
async def home(optional_principal: OptionalPrincipal) -> Redirect:
    return Redirect("/deployments" if optional_principal else "/login", status_code=303)


@get("/login", **_page_route())
async def login_page(
    request: Request[Any, Any, Any],
    optional_principal: OptionalPrincipal,
    settings: AppSettings,
    next: FromQuery[str | None] = None,
) -> Response[Any]:
    target = safe_next(next) or "/deployments"
    if optional_principal is not None and optional_principal.via == "session":
        return Redirect(target, status_code=303)
    secure = settings.auth.session_cookie_secure
    name = cookie_names(secure).login_csrf
    # Keep a token the browser already has, so two open sign-in tabs both work.
    token = request.cookies.get(name, "")
    if not is_login_token(token):
        token = new_login_token()
    page = _page(request, None, "login.html", title="Sign in", next=target, login_token=token)
    page.cookies.append(make_cookie(name, token, secure=secure, max_age=LOGIN_TOKEN_TTL_S, samesite="strict"))
    return page


@get("/deployments", **_page_route())
async def list_page(
    request: Request[Any, Any, Any],
    optional_principal: OptionalPrincipal,
    database: AppDatabase,
    team_id: FromQuery[str | None] = None,
) -> Response[Any]:
    return await _render(request, optional_principal, database, "list.html", "Deployments",
                         lambda db, p: views.list_view(db, p, team_id))  # fmt: skip


@get("/deploy", **_page_route())
async def create_page(
    request: Request[Any, Any, Any],
    optional_principal: OptionalPrincipal,
    database: AppDatabase,
    team_id: FromQuery[str | None] = None,
) -> Response[Any]:
    return await _render(request, optional_principal, database, "create.html", "New deployment",
                         lambda db, p: views.create_view(db, p, team_id))  # fmt: skip


@get("/deployments/{name:str}", **_page_route())
async def detail_page(
    request: Request[Any, Any, Any],
    optional_principal: OptionalPrincipal,
    database: AppDatabase,
    settings: AppSettings,
    name: FromPath[str],
    op: FromQuery[str | None] = None,
) -> Response[Any]:
    def view(db: Session, principal: Principal) -> dict[str, Any]:
        context = views.detail_view(db, principal, name, settings)
        return {**context, "name": name, "operation_id": op or "", "quoted_name": quote(name, safe="")}

    return await _render(request, optional_principal, database, "detail.html", f"Deployment {name}", view)


static_files = create_static_files_router(
    path=STATIC_PATH,
    directories=[STATIC_DIR],
    name="pages-static",
    opt={PUBLIC: True},
    include_in_schema=False,
    middleware=[SecurityHeaders(STATIC_HEADERS)],
)

ROUTES = [home, login_page, list_page, create_page, detail_page, static_files]
