"""Routes of sign-in and the caller's own credentials.

    POST /api/auth/login         JSON or an HTML form; sets the session cookies
    POST /api/auth/logout        ends the cookie session
    GET  /api/auth/me            the caller: user, scopes, teams, CSRF token
    POST /api/keys               create a key for yourself (shown once)
    GET  /api/keys               your keys (prefixes and metadata)
    POST /api/keys/{prefix}/revoke

Login sets two cookies: `shipstack_session` (HttpOnly, SameSite=Lax) and
`shipstack_csrf` (readable by scripts, to echo back in `X-CSRF-Token`). Attempts
are limited per (user name, client IP): every attempt takes a token, success gives
them back, so parallel guessing is bounded too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect

from api.accounts.schemas import user_out
from api.auth import keys, sessions
from api.auth.guards import CurrentPrincipal, require_authenticated
from api.auth.middleware import CSRF_COOKIE, FORM_TYPES, PUBLIC, SESSION_COOKIE
from api.auth.schemas import KeyCreated, KeyOut, LoginRequest, LoginResponse, OwnKeyCreate, WhoAmI
from api.errors import Invalid, RateLimited
from api.http.context import context_of
from api.http.dependencies import AppSettings, DbSession
from api.http.errors import AUTH_ERRORS, error_responses
from stacks.settings import AuthSettings


def _login_schema() -> Schema:
    text = Schema(type=OpenAPIType.STRING)
    return Schema(
        type=OpenAPIType.OBJECT,
        properties={
            "name": text,
            "password": Schema(type=OpenAPIType.STRING, format="password"),  # type: ignore[arg-type]
            "next": Schema(type=OpenAPIType.STRING, description="form posts: local redirect"),
        },
        required=["name", "password"],
    )


@dataclass
class _LoginOperation(Operation):
    """Documents the body Litestar cannot infer: the handler reads JSON or a form itself."""

    def __post_init__(self) -> None:
        media = OpenAPIMediaType(schema=_login_schema())
        self.request_body = RequestBody(
            required=True,
            content={"application/json": media, "application/x-www-form-urlencoded": media},
        )
        self.security = []


def _is_form(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("content-type", "").startswith(FORM_TYPES)


async def _read_login(request: Request[Any, Any, Any]) -> LoginRequest:
    try:
        if _is_form(request):
            form = await request.form()
            raw: Any = {k: v for k, v in form.items() if isinstance(v, str)}
            return msgspec.convert(raw, LoginRequest)
        return msgspec.json.decode(await request.body(), type=LoginRequest)
    except msgspec.ValidationError as exc:
        raise Invalid(f"Invalid login request: {exc}", "bad_request") from None
    except msgspec.DecodeError:
        raise Invalid("Login body must be JSON or a form", "bad_request") from None


def _cookies(auth: AuthSettings, token: str, csrf: str, max_age: int) -> list[Cookie]:
    common: dict[str, Any] = {"path": "/", "samesite": "lax", "secure": auth.session_cookie_secure, "max_age": max_age}
    return [
        Cookie(key=SESSION_COOKIE, value=token, httponly=True, **common),
        Cookie(key=CSRF_COOKIE, value=csrf, httponly=False, **common),
    ]


@post(
    "/api/auth/login",
    opt={PUBLIC: True},
    status_code=200,
    operation_class=_LoginOperation,
    responses=error_responses(400, 401, 429),
    tags=["auth"],
    summary="Log in with name and password (JSON or form); sets the session cookie",
)
async def login(request: Request[Any, Any, Any], settings: AppSettings) -> Response[LoginResponse]:
    body = await _read_login(request)
    name = body.name.strip().lower()
    client = request.client.host if request.client else "unknown"
    context = context_of(request.app.state)
    bucket = f"{name}|{client}"
    wait = context.login_limiter.hit(bucket)
    if wait is not None:
        raise RateLimited("Too many login attempts", retry_after_s=wait)

    def open_in_write_transaction() -> sessions.OpenedSession:
        # Reads the user, then writes the session: on SQLite that must take the
        # write lock up front, or a concurrent writer (the runner) makes it fail.
        with context.db.writes() as db:
            return sessions.open_session(db, name, body.password, settings.auth.session_ttl_s)

    opened = await anyio.to_thread.run_sync(open_in_write_transaction)
    context.login_limiter.reset(bucket)
    cookies = _cookies(settings.auth, opened.token, opened.csrf_token, settings.auth.session_ttl_s)
    target = sessions.safe_next(body.next) if _is_form(request) else None
    if target:
        return Redirect(target, status_code=303, cookies=cookies)
    body_out = LoginResponse(user=user_out(opened.user), csrf_token=opened.csrf_token, expires_at=opened.expires_at)
    return Response(body_out, cookies=cookies)


@post(
    "/api/auth/logout",
    guards=[require_authenticated()],
    responses=AUTH_ERRORS,
    status_code=204,
    sync_to_thread=True,
    tags=["auth"],
    summary="End the cookie session (a no-op for API keys)",
)
def logout(
    principal: CurrentPrincipal, db_session: DbSession, settings: AppSettings, next: FromQuery[str | None] = None
) -> Response[None]:
    sessions.close_session(db_session, principal)
    cookies = _cookies(settings.auth, "", "", 0)
    target = sessions.safe_next(next)
    if target:
        return Redirect(target, status_code=303, cookies=cookies)
    return Response(None, status_code=204, cookies=cookies)


@get(
    "/api/auth/me",
    guards=[require_authenticated()],
    responses=AUTH_ERRORS,
    sync_to_thread=True,
    tags=["auth"],
    summary="The caller: user, scopes, teams, and the CSRF token of a cookie session",
)
def me(principal: CurrentPrincipal, db_session: DbSession) -> WhoAmI:
    return sessions.who_am_i(db_session, principal)


_KEY_ROUTE = {"guards": [require_authenticated()], "responses": AUTH_ERRORS, "sync_to_thread": True, "tags": ["keys"]}


@post("/api/keys", status_code=201, summary="Create an API key for yourself; shown in this response only", **_KEY_ROUTE)
def create_own_key(data: JSONBody[OwnKeyCreate], principal: CurrentPrincipal, db_session: DbSession) -> KeyCreated:
    return keys.create_own_key(db_session, principal, data)


@get("/api/keys", summary="Your API keys (prefixes and metadata, never the keys)", **_KEY_ROUTE)
def list_own_keys(principal: CurrentPrincipal, db_session: DbSession) -> list[KeyOut]:
    return keys.list_own_keys(db_session, principal)


@post("/api/keys/{prefix:str}/revoke", status_code=200, summary="Revoke one of your API keys", **_KEY_ROUTE)
def revoke_own_key(prefix: FromPath[str], principal: CurrentPrincipal, db_session: DbSession) -> KeyOut:
    return keys.revoke_own_key(db_session, principal, prefix)


ROUTES = [login, logout, me, create_own_key, list_own_keys, revoke_own_key]
