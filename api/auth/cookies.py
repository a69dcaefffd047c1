"""shipstack's cookies: their names and attributes, and the pre-session login token.

Three cookies, all `Path=/`, `SameSite`:

* the session (`shipstack_session`, HttpOnly, Lax), set by a sign-in;
* its CSRF token (`shipstack_csrf`, readable by scripts, Lax);
* the login token (`shipstack_login_csrf`, HttpOnly, Strict), set by the sign-in
  page before there is a session: its value is also the form's hidden `_csrf`
  field, and a form sign-in must send both, equal (a double-submit token).

With SHIPSTACK_SECURE_COOKIES=true (behind TLS) every name is `__Host-`
prefixed: a browser accepts such a cookie only when it is Secure, has Path=/ and
no Domain, so no other host can set or overwrite it. That matters here: the apps
shipstack deploys live on subdomains of the base domain, and without the prefix
one of them could plant a login token of its choosing for the parent domain
(cookie tossing) and so defeat the double submit.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from litestar.datastructures import Cookie

HOST_PREFIX = "__Host-"
LOGIN_TOKEN_TTL_S = 2 * 3600
_TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class CookieNames:
    session: str
    csrf: str
    login_csrf: str


def cookie_names(secure: bool) -> CookieNames:
    prefix = HOST_PREFIX if secure else ""
    return CookieNames(
        session=f"{prefix}shipstack_session", csrf=f"{prefix}shipstack_csrf", login_csrf=f"{prefix}shipstack_login_csrf"
    )


def make_cookie(
    name: str,
    value: str,
    *,
    secure: bool,
    max_age: int,
    httponly: bool = True,
    samesite: Literal["lax", "strict"] = "lax",
) -> Cookie:
    return Cookie(key=name, value=value, path="/", secure=secure, httponly=httponly, samesite=samesite, max_age=max_age)


def new_login_token() -> str:
    return secrets.token_urlsafe(_TOKEN_BYTES)


def is_login_token(value: str | None) -> bool:
    """A value this module could have made (the page keeps a good one across reloads)."""
    return bool(value) and len(value or "") == len(new_login_token()) and (value or "").isascii()


def login_token_matches(cookie: str | None, sent: str | None) -> bool:
    """The form's token equals the pre-session cookie's, compared in constant time."""
    if not cookie or not sent or not is_login_token(cookie):
        return False
    return hmac.compare_digest(cookie.encode(), sent.encode())
