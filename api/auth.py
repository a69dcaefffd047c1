"""Authentication and authorization for every route.

`AuthMiddleware` authenticates every request to a route unless the handler opts
out with `opt={"public": True}` (login, health, docs) or makes it optional with
`opt={"auth_optional": True}` (pages that also render anonymously). Credentials:

* `Authorization: Bearer ssk_...` API keys, scoped and optionally team-bound;
* the `shipstack_session` cookie from `POST /api/auth/login`. Unsafe methods sent
  with the cookie need the session's CSRF token in the `X-CSRF-Token` header or a
  `_csrf` form field (the token is returned at login, by `GET /api/auth/me`, and
  in the script-readable `shipstack_csrf` cookie).

Then it applies the per-credential rate limit (429 + Retry-After) and stores the
`Principal` in `scope["user"]` (so `request.user` works too).

Route handlers declare the `principal` dependency and guard with `require_scope`:

    @get("/api/deployments", guards=[require_scope(READ)], sync_to_thread=True)
    def list_deployments(principal: CurrentPrincipal, team_context: TeamContext, db_session: DbSession): ...

(`CurrentPrincipal`/`TeamContext` here and `DbSession` in api.dependencies are the
types `Principal`, `int | None` and `Session`, marked as injected for Litestar 3.)

This module also re-exports the tenancy and tier helpers so route modules need one import.
"""

from __future__ import annotations

import hmac
from typing import Any

import anyio.to_thread
from litestar import Request
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Guard, Receive, Scope, Send

from api.authenticate import authenticate, unauthorized
from api.errors import ApiError
from api.principal import ADMIN, ALL_SCOPES, READ, WRITE, Principal
from api.ratelimit import RateLimiter, retry_after_header
from api.tenancy import (
    TEAM_HEADER,
    can_manage,
    can_view,
    get_visible_deployment,
    provide_team_context,
    resolve_team_context,
    visible_deployments_filter,
)
from api.tiers import TIER_LIMITS, check_tier_limit

# Annotations for handler parameters, e.g. `principal: CurrentPrincipal`. Litestar 2.25+
# wants injected parameters marked; a plain `principal: Principal` still works in 2.x.
CurrentPrincipal = NamedDependency[Principal]
OptionalPrincipal = NamedDependency[Principal | None]
TeamContext = NamedDependency[int | None]

__all__ = [
    "ADMIN",
    "ALL_SCOPES",
    "AUTH_OPTIONAL",
    "CSRF_COOKIE",
    "CSRF_FORM_FIELD",
    "CSRF_HEADER",
    "PUBLIC",
    "READ",
    "SESSION_COOKIE",
    "TEAM_HEADER",
    "TIER_LIMITS",
    "WRITE",
    "AuthMiddleware",
    "CurrentPrincipal",
    "OptionalPrincipal",
    "Principal",
    "TeamContext",
    "can_manage",
    "can_view",
    "check_tier_limit",
    "get_visible_deployment",
    "provide_optional_principal",
    "provide_principal",
    "provide_team_context",
    "require_authenticated",
    "require_scope",
    "resolve_team_context",
    "visible_deployments_filter",
]

PUBLIC = "public"
AUTH_OPTIONAL = "auth_optional"
SESSION_COOKIE = "shipstack_session"
CSRF_COOKIE = "shipstack_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class AuthMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        opt = scope["route_handler"].opt
        # OPTIONS answers only with the allowed methods, like an unknown route would.
        if opt.get(PUBLIC) or scope["method"] == "OPTIONS":
            await next_app(scope, receive, send)
            return
        request: Request[Any, Any, Any] = Request(scope, receive)
        state = request.app.state
        optional = bool(opt.get(AUTH_OPTIONAL))
        principal = await anyio.to_thread.run_sync(
            lambda: authenticate(
                state.session_factory,
                request.headers.get("authorization"),
                request.cookies.get(SESSION_COOKIE),
                optional=optional,
            )
        )
        if principal is None:
            if not optional:
                raise unauthorized("Authentication required: send 'Authorization: Bearer <key>'")
        else:
            _apply_rate_limit(state.rate_limiter, principal)
            if principal.via == "session" and scope["method"] not in SAFE_METHODS:
                await _check_csrf(request, principal)
        scope["user"] = principal
        scope["auth"] = principal.via if principal else None
        await next_app(scope, receive, send)


def _apply_rate_limit(limiter: RateLimiter, principal: Principal) -> None:
    wait = limiter.hit(principal.rate_limit_key)
    if wait is not None:
        raise ApiError(
            429,
            "rate_limited",
            f"Rate limit of {limiter.capacity} requests per minute exceeded",
            headers=retry_after_header(wait),
        )


async def _check_csrf(request: Request[Any, Any, Any], principal: Principal) -> None:
    """Synchronizer token: the value must equal the one stored with the session."""
    sent = request.headers.get(CSRF_HEADER)
    if not sent and request.headers.get("content-type", "").startswith(_FORM_TYPES):
        # Litestar caches the parsed form on the connection, so the handler can read it again.
        value = (await request.form()).get(CSRF_FORM_FIELD)
        sent = value if isinstance(value, str) else None
    expected = principal.csrf_token or ""
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(
            403,
            "csrf_failed",
            f"Missing or invalid CSRF token: send the {CSRF_HEADER} header or a {CSRF_FORM_FIELD} form field",
        )


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """Litestar dependency `principal`: the authenticated caller (401 if anonymous)."""
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        raise unauthorized("Authentication required")
    return principal


async def provide_optional_principal(request: Request[Any, Any, Any]) -> Principal | None:
    """Litestar dependency `optional_principal`, for `auth_optional` routes."""
    principal = request.scope.get("user")
    return principal if isinstance(principal, Principal) else None


def require_scope(*scopes: str) -> Guard:
    """Guard: authenticated (else 401) and holding every scope given (else 403)."""
    unknown = set(scopes) - set(ALL_SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}")

    def guard(connection: Any, _handler: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise unauthorized("Authentication required")
        missing = [s for s in scopes if not principal.has_scope(s)]
        if missing:
            raise ApiError(403, "forbidden", f"Missing scope: {', '.join(missing)}")

    guard.required_scopes = scopes  # type: ignore[attr-defined]  # read by the route audit test
    return guard


def require_authenticated() -> Guard:
    """Guard for routes any authenticated caller may use (their own keys, logout)."""
    return require_scope()
