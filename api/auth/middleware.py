"""Authentication of every request: credentials, the rate limit and CSRF.

`AuthMiddleware` authenticates every request to a route unless the handler opts
out with `opt={"public": True}` (login, health, docs) or makes it optional with
`opt={"auth_optional": True}` (pages that also render anonymously). Credentials:

* `Authorization: Bearer ssk_...` API keys, scoped and optionally team-bound;
* the session cookie from `POST /api/auth/login` (`shipstack_session`, or
  `__Host-shipstack_session` with secure cookies: `api.auth.cookies`). Unsafe
  methods sent with the cookie need the session's CSRF token in the
  `X-CSRF-Token` header or a `_csrf` form field (the token is returned at login,
  by `GET /api/auth/me`, and in the script-readable CSRF cookie).

Then it applies the per-credential rate limit (429 + Retry-After) and stores the
`Principal` in `scope["user"]` (so `request.user` works too).
"""

from __future__ import annotations

import hmac
from typing import Any

import anyio.to_thread
from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from api.auth.authenticate import authenticate
from api.auth.cookies import cookie_names
from api.auth.principal import Principal
from api.auth.ratelimit import RateLimiter
from api.errors import Forbidden, RateLimited, Unauthorized
from api.http.context import context_of

PUBLIC = "public"
AUTH_OPTIONAL = "auth_optional"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class AuthMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        opt = scope["route_handler"].opt
        # OPTIONS answers only with the allowed methods, like an unknown route would.
        if opt.get(PUBLIC) or scope["method"] == "OPTIONS":
            await next_app(scope, receive, send)
            return
        request: Request[Any, Any, Any] = Request(scope, receive)
        context = context_of(request.app.state)
        optional = bool(opt.get(AUTH_OPTIONAL))
        principal = await anyio.to_thread.run_sync(
            lambda: authenticate(
                context.db.reads,
                request.headers.get("authorization"),
                request.cookies.get(cookie_names(context.settings.auth.session_cookie_secure).session),
                optional=optional,
            )
        )
        if principal is None:
            if not optional:
                raise Unauthorized("Authentication required: send 'Authorization: Bearer <key>'")
        else:
            apply_rate_limit(context.rate_limiter, principal)
            if principal.via == "session" and scope["method"] not in SAFE_METHODS:
                await _check_csrf(request, principal)
        scope["user"] = principal
        scope["auth"] = principal.via if principal else None
        await next_app(scope, receive, send)


def apply_rate_limit(limiter: RateLimiter, principal: Principal) -> None:
    wait = limiter.hit(principal.rate_limit_key)
    if wait is not None:
        raise RateLimited(f"Rate limit of {limiter.capacity} requests per minute exceeded", retry_after_s=wait)


async def _check_csrf(request: Request[Any, Any, Any], principal: Principal) -> None:
    """Synchronizer token: the value must equal the one stored with the session."""
    sent = request.headers.get(CSRF_HEADER)
    if not sent and request.headers.get("content-type", "").startswith(FORM_TYPES):
        # Litestar caches the parsed form on the connection, so the handler can read it again.
        value = (await request.form()).get(CSRF_FORM_FIELD)
        sent = value if isinstance(value, str) else None
    expected = principal.csrf_token or ""
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden(
            f"Missing or invalid CSRF token: send the {CSRF_HEADER} header or a {CSRF_FORM_FIELD} form field",
            "csrf_failed",
        )
