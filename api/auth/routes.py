"""Routes of sign-in and the caller's own credentials.

    POST /api/auth/login         JSON or an HTML form; sets the session cookies
    POST /api/auth/logout        ends the cookie session
    GET  /api/auth/me            the caller: user, scopes, teams, CSRF token
    POST /api/keys               create a key for yourself (shown once)
    GET  /api/keys               your keys (prefixes and metadata)
    POST /api/keys/{prefix}/revoke

Login sets two cookies (`api.auth.cookies`): the session (HttpOnly, SameSite=Lax)
and its CSRF token (readable by scripts, to echo back in `X-CSRF-Token`). Attempts
are limited per (user name, client IP): every attempt takes a token, success gives
them back, so parallel guessing is bounded too.

Login CSRF (signing a victim in as the attacker): a form sign-in must carry the
login token of the sign-in page, equal to its pre-session cookie (a double submit,
`api.auth.cookies`). A JSON sign-in needs no token: it must be sent as
`application/json` (anything else but a form is 415), which a page of another
site can only send through a CORS preflight this service never grants, so it
cannot be forged cross-site; and API clients without cookies keep working.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect

from api.accounts.schemas import user_out
from api.auth import keys, sessions
from api.auth.cookies import cookie_names, login_token_matches, make_cookie
from api.auth.guards import CurrentPrincipal, require_authenticated
from api.auth.middleware import CSRF_FORM_FIELD, FORM_TYPES, PUBLIC
from api.auth.schemas import KeyCreated, KeyOut, LoginRequest, LoginResponse, OwnKeyCreate, WhoAmI
from api.errors import Forbidden, Invalid, RateLimited
from api.http.context import context_of
from api.http.dependencies import AppSettings, DbSession, WriteSession
from api.http.document import BODY
from api.http.errors import AUTH_ERRORS, error_responses
from stacks.settings import AuthSettings, Settings


class LoginForm(LoginRequest, forbid_unknown_fields=False):
    """A sign-in form post: the login token of the sign-in page rides along."""

    csrf: str = msgspec.field(default="", name=CSRF_FORM_FIELD)


def _media_type(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _read_login(request: Request[Any, Any, Any], settings: Settings) -> LoginRequest:
    """The JSON or form body; a form must carry the login token (see the module doc)."""
    media = _media_type(request)
    try:
        if media in FORM_TYPES:
            form = await request.form()
            raw: Any = {k: v for k, v in form.items() if isinstance(v, str)}
            sent = raw.get(CSRF_FORM_FIELD)
            names = cookie_names(settings.auth.session_cookie_secure)
            if not login_token_matches(request.cookies.get(names.login_csrf), sent):
                raise Forbidden("Missing or invalid sign-in token: reload the sign-in page", "csrf_failed")
            return msgspec.convert(raw, LoginRequest)
        if media != "application/json":
            raise HTTPException(status_code=415, detail="Send the login as application/json or as a form")
        return msgspec.json.decode(await request.body(), type=LoginRequest)
    except msgspec.ValidationError as exc:
        raise Invalid(f"Invalid login request: {exc}", "bad_request") from None
    except msgspec.DecodeError:
        raise Invalid("Login body must be JSON or a form", "bad_request") from None


def _cookies(auth: AuthSettings, token: str, csrf: str, max_age: int) -> list[Cookie]:
    names = cookie_names(auth.session_cookie_secure)
    secure = auth.session_cookie_secure
    return [
        make_cookie(names.session, token, secure=secure, max_age=max_age),
        make_cookie(names.csrf, csrf, secure=secure, max_age=max_age, httponly=False),
        # The login token has done its job once a session exists.
        make_cookie(names.login_csrf, "", secure=secure, max_age=0, samesite="strict"),
    ]


@post(
    "/api/auth/login",
    opt={PUBLIC: True, BODY: {"application/json": LoginRequest, "application/x-www-form-urlencoded": LoginForm}},
    status_code=200,
    security=[{}],
    responses={
        **error_responses(400, 401, 403, 415, 429),
        303: ResponseSpec(None, description="A form sign-in with a local `next`: go there"),
    },
    tags=["auth"],
    summary="Log in with name and password (JSON or form); sets the session cookie",
)
async def login(request: Request[Any, Any, Any], settings: AppSettings) -> Response[LoginResponse]:
    body = await _read_login(request, settings)
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
    target = sessions.safe_next(body.next) if _media_type(request) in FORM_TYPES else None
    if target:
        return Redirect(target, status_code=303, cookies=cookies)
    body_out = LoginResponse(user=user_out(opened.user), csrf_token=opened.csrf_token, expires_at=opened.expires_at)
    return Response(body_out, cookies=cookies)


@post(
    "/api/auth/logout",
    guards=[require_authenticated()],
    responses={**AUTH_ERRORS, 303: ResponseSpec(None, description="With a local `next`: go there")},
    status_code=204,
    sync_to_thread=True,
    tags=["auth"],
    summary="End the cookie session (a no-op for API keys)",
)
def logout(
    principal: CurrentPrincipal, write_session: WriteSession, settings: AppSettings, next: FromQuery[str | None] = None
) -> Response[None]:
    sessions.close_session(write_session, principal)
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


@post("/api/keys", status_code=201, summary="Create an API key for yourself; shown in this response only",
      **{**_KEY_ROUTE, "responses": {**AUTH_ERRORS, **error_responses(409)}})  # fmt: skip
def create_own_key(
    data: JSONBody[OwnKeyCreate], principal: CurrentPrincipal, write_session: WriteSession, settings: AppSettings
) -> KeyCreated:
    """409 `key_limit` when you already hold SHIPSTACK_MAX_API_KEYS live keys."""
    return keys.create_own_key(write_session, principal, data, settings.auth.max_api_keys)


@get("/api/keys", summary="Your API keys (prefixes and metadata, never the keys)", **_KEY_ROUTE)
def list_own_keys(principal: CurrentPrincipal, db_session: DbSession) -> list[KeyOut]:
    return keys.list_own_keys(db_session, principal)


@post("/api/keys/{prefix:str}/revoke", status_code=200, summary="Revoke one of your API keys", **_KEY_ROUTE)
def revoke_own_key(prefix: FromPath[str], principal: CurrentPrincipal, write_session: WriteSession) -> KeyOut:
    return keys.revoke_own_key(write_session, principal, prefix)


ROUTES = [login, logout, me, create_own_key, list_own_keys, revoke_own_key]
