"""Browser sessions: `POST /api/auth/login`, `POST /api/auth/logout`, `GET /api/auth/me`.

Login accepts JSON or an HTML form (`name`, `password`, optional `next`), checks the
argon2 hash, and sets two cookies: `shipstack_session` (HttpOnly, SameSite=Lax) and
`shipstack_csrf` (readable by scripts, to echo back in `X-CSRF-Token`). Attempts are
limited per (user name, client IP): every attempt takes a token, success gives them
back, so parallel guessing is bounded too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromQuery
from litestar.response import Redirect
from sqlalchemy.orm import Session

from api.auth import CSRF_COOKIE, PUBLIC, SESSION_COOKIE, CurrentPrincipal, require_authenticated
from api.credentials import (
    hash_password,
    new_csrf_token,
    new_session_token,
    password_needs_rehash,
    verify_password,
)
from api.dependencies import AppSettings, DbSession
from api.errors import AUTH_ERRORS, ApiError, error_responses
from api.ratelimit import retry_after_header
from api.schemas_auth import LoginRequest, LoginResponse, TeamRole, WhoAmI, user_out
from persistence.accounts import get_user, get_user_by_name
from persistence.base import utcnow
from persistence.login_sessions import add_session, delete_session, purge_expired
from persistence.models import User
from stacks.settings import Settings

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


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
    return request.headers.get("content-type", "").startswith(_FORM_TYPES)


async def _read_login(request: Request[Any, Any, Any]) -> LoginRequest:
    try:
        if _is_form(request):
            form = await request.form()
            raw: Any = {k: v for k, v in form.items() if isinstance(v, str)}
            return msgspec.convert(raw, LoginRequest)
        return msgspec.json.decode(await request.body(), type=LoginRequest)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "bad_request", f"Invalid login request: {exc}") from None
    except msgspec.DecodeError:
        raise ApiError(400, "bad_request", "Login body must be JSON or a form") from None


def _safe_next(target: str | None) -> str | None:
    """Only same-site paths: `//evil.example` and `https://...` would be open redirects."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return None


def _session_cookies(token: str, csrf: str, settings: Settings) -> list[Cookie]:
    common: dict[str, Any] = {
        "path": "/",
        "samesite": "lax",
        "secure": settings.auth.session_cookie_secure,
        "max_age": settings.auth.session_ttl_s,
    }
    return [
        Cookie(key=SESSION_COOKIE, value=token, httponly=True, **common),
        Cookie(key=CSRF_COOKIE, value=csrf, httponly=False, **common),
    ]


def _cleared_cookies(settings: Settings) -> list[Cookie]:
    common: dict[str, Any] = {
        "path": "/",
        "samesite": "lax",
        "secure": settings.auth.session_cookie_secure,
        "max_age": 0,
        "value": "",
    }
    return [
        Cookie(key=SESSION_COOKIE, httponly=True, **common),
        Cookie(key=CSRF_COOKIE, httponly=False, **common),
    ]


def _open_session(db: Session, name: str, password: str, settings: Settings) -> tuple[User, str, str, datetime] | None:
    user = get_user_by_name(db, name)
    # Verified even for unknown users, against a dummy hash: equal timing.
    if not verify_password(user.password_hash if user else None, password) or user is None:
        return None
    now = utcnow()
    if user.password_hash and password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    token, id_hash = new_session_token()
    csrf = new_csrf_token()
    expires_at = now + timedelta(seconds=settings.auth.session_ttl_s)
    add_session(db, id_hash=id_hash, user_id=user.id, csrf_token=csrf, expires_at=expires_at)
    purge_expired(db, now)
    db.commit()
    return user, token, csrf, expires_at


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
    limiter = request.app.state.login_limiter
    bucket = f"{name}|{client}"
    wait = limiter.hit(bucket)
    if wait is not None:
        raise ApiError(429, "rate_limited", "Too many login attempts", headers=retry_after_header(wait))

    def open_in_write_transaction() -> tuple[User, str, str, datetime] | None:
        # Reads the user, then writes the session: on SQLite that must take the
        # write lock up front, or a concurrent writer (the runner) makes it fail.
        with request.app.state.write_session_factory() as db:
            return _open_session(db, name, body.password, settings)

    opened = await anyio.to_thread.run_sync(open_in_write_transaction)
    if opened is None:
        raise ApiError(401, "unauthorized", "Invalid user name or password")
    limiter.reset(bucket)
    user, token, csrf, expires_at = opened
    cookies = _session_cookies(token, csrf, settings)
    target = _safe_next(body.next) if _is_form(request) else None
    if target:
        return Redirect(target, status_code=303, cookies=cookies)
    return Response(
        LoginResponse(user=user_out(user), csrf_token=csrf, expires_at=expires_at),
        cookies=cookies,
    )


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
    if principal.via == "session" and principal.session_id:
        delete_session(db_session, principal.session_id)
        db_session.commit()
    cookies = _cleared_cookies(settings)
    target = _safe_next(next)
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
    user = get_user(db_session, principal.user_id)
    if user is None:
        raise ApiError(401, "unauthorized", "User no longer exists")
    return WhoAmI(
        user=user_out(user),
        via=principal.via,
        scopes=sorted(principal.scopes),  # type: ignore[arg-type]
        teams=[TeamRole(team_id=t, role=r) for t, r in sorted(principal.teams.items())],  # type: ignore[arg-type]
        key_prefix=principal.key_prefix,
        bound_team_id=principal.bound_team_id,
        csrf_token=principal.csrf_token,
    )


ROUTES = [login, logout, me]
