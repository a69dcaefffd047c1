"""Signing in from the page: the pre-session login token (login CSRF), `next`
after sign-in, and `__Host-` cookie names behind TLS."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.auth.cookies import cookie_names
from api.auth.sessions import safe_next
from api.http.context import context_of
from stacks.settings import Settings
from tests.seed import MakeClient, Seed

PASSWORD = "correct horse battery"
NAMES = cookie_names(secure=False)


def login_page_token(client: TestClient[Litestar], path: str = "/login") -> str:
    """The hidden `_csrf` field of the sign-in form (its cookie stays in the client)."""
    page = client.get(path)
    assert page.status_code == 200
    found = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    assert found, "the sign-in form carries no login token"
    return found.group(1)


def test_form_sign_in_needs_the_token_of_the_sign_in_page(client: TestClient[Litestar], seed: Seed) -> None:
    seed.user("alice", password=PASSWORD)
    form = {"name": "alice", "password": PASSWORD, "next": "/deployments"}
    # A cross-site form post: no login cookie, no token.
    forged = client.post("/api/auth/login", data=form, follow_redirects=False)
    assert forged.status_code == 403 and forged.json()["code"] == "csrf_failed"
    assert NAMES.session not in client.cookies

    token = login_page_token(client)
    cookie = client.cookies[NAMES.login_csrf]
    assert cookie == token
    # The attacker's own token with the victim's cookie (or none) does not match.
    wrong = client.post("/api/auth/login", data={**form, "_csrf": token[:-2] + "xx"}, follow_redirects=False)
    assert wrong.status_code == 403
    client.cookies.delete(NAMES.login_csrf)
    assert client.post("/api/auth/login", data={**form, "_csrf": token}, follow_redirects=False).status_code == 403

    client.cookies.set(NAMES.login_csrf, cookie)
    response = client.post("/api/auth/login", data={**form, "_csrf": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/deployments"
    assert NAMES.session in client.cookies
    # The login token is spent once a session exists.
    spent = [c for c in response.headers.get_list("set-cookie") if c.startswith(NAMES.login_csrf + "=")]
    assert len(spent) == 1 and "max-age=0" in spent[0].lower()


def test_the_sign_in_page_sets_a_strict_http_only_login_cookie_and_keeps_it(client: TestClient[Litestar]) -> None:
    page = client.get("/login")
    cookie = next(c for c in page.headers.get_list("set-cookie") if c.startswith(NAMES.login_csrf + "="))
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    first = login_page_token(client)
    assert login_page_token(client) == first  # a second tab gets the same token
    client.cookies.set(NAMES.login_csrf, "not-one-of-ours")
    assert login_page_token(client) != "not-one-of-ours"


def test_json_sign_in_needs_no_token_but_must_be_json(client: TestClient[Litestar], seed: Seed) -> None:
    """API clients without cookies keep working; a text/plain body shaped as JSON (what a
    cross-site form with enctype=text/plain can send) is refused."""
    seed.user("alice", password=PASSWORD)
    body = f'{{"name": "alice", "password": "{PASSWORD}"}}'
    plain = client.post("/api/auth/login", content=body, headers={"content-type": "text/plain"})
    assert plain.status_code == 415 and plain.json()["code"] == "unsupported_media_type"
    assert client.post("/api/auth/login", content=body).status_code == 415  # no content type at all
    ok = client.post("/api/auth/login", content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200 and ok.json()["user"]["name"] == "alice"


def test_form_sign_in_goes_to_a_local_next_only(client: TestClient[Litestar], seed: Seed) -> None:
    seed.user("alice", password=PASSWORD)
    token = login_page_token(client)
    form = {"name": "alice", "password": PASSWORD, "_csrf": token}
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example"):
        response = client.post("/api/auth/login", data={**form, "next": evil}, follow_redirects=False)
        assert response.status_code == 200, evil  # signed in, but not sent anywhere
        client.cookies.clear()
        form["_csrf"] = login_page_token(client)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/deployments", "/deployments"),
        ("/deployments/web-1?op=abc#logs", "/deployments/web-1?op=abc#logs"),
        ("/", "/"),
        (None, None),
        ("", None),
        ("deployments", None),  # relative: resolved against the current path
        ("//evil.example/", None),  # scheme-relative: another host
        ("///evil.example/", None),
        ("https://evil.example/", None),
        ("javascript:alert(1)", None),
        ("/\\evil.example", None),  # browsers read a backslash as a slash
        ("\\/evil.example", None),
        ("/\t/evil.example", None),  # browsers drop tabs and newlines before parsing
        ("/\n/evil.example", None),
        ("/\r/evil.example", None),
        ("/\x00/evil.example", None),
        ("/\x7f", None),
    ],
)
def test_safe_next_accepts_same_origin_paths_only(target: str | None, expected: str | None) -> None:
    assert safe_next(target) == expected


def test_secure_cookies_are_host_prefixed_everywhere(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    """Behind TLS every cookie is `__Host-` (Secure, Path=/, no Domain) and is what the
    service reads back; the OpenAPI document names the session cookie so too."""
    client = make_client(make_settings(SHIPSTACK_SECURE_COOKIES="true"))
    secure = cookie_names(secure=True)
    assert secure.session == "__Host-shipstack_session"
    Seed(context_of(client.app.state).db.reads).user("alice", password=PASSWORD)
    page = client.get("/login")
    set_cookies = page.headers.get_list("set-cookie")
    assert any(c.startswith(secure.login_csrf + "=") and "secure" in c.lower() for c in set_cookies)
    token = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    assert token
    # The test client speaks http, so it would not send Secure cookies back: send them by hand.
    response = client.post(
        "/api/auth/login",
        data={"name": "alice", "password": PASSWORD, "_csrf": token.group(1)},
        headers={"cookie": f"{secure.login_csrf}={token.group(1)}"},
        follow_redirects=False,
    )
    assert response.status_code == 200, response.text
    issued = {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}
    for name in (secure.session, secure.csrf):
        assert name in issued and "secure" in issued[name] and "path=/" in issued[name] and "domain" not in issued[name]
    session = response.headers.get_list("set-cookie")[0].split(";", 1)[0].split("=", 1)[1]
    me = client.get("/api/auth/me", headers={"cookie": f"{secure.session}={session}"})
    assert me.status_code == 200 and me.json()["via"] == "session"
    # The unprefixed name is not read any more.
    assert client.get("/api/auth/me", headers={"cookie": f"{NAMES.session}={session}"}).status_code == 401
    scheme = client.get("/api/openapi.json").json()["components"]["securitySchemes"]["cookie"]
    assert scheme["name"] == secure.session
