"""The pages over plain HTTP (no browser, no cluster): who may see what, the CSRF-protected
HTML forms, redirects, headers and the static files. The browser tests drive the same
pages in Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.http.context import context_of
from stacks.settings import Settings
from tests.seed import Seed

PASSWORD = "a long enough password"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    from api.http.app import build_app

    settings = Settings.from_env(
        {
            "SHIPSTACK_DATA": str(tmp_path / "data"),
            "SHIPSTACK_CACHE": str(tmp_path / "cache"),
            "KUBECONFIG": str(tmp_path / "no-cluster"),
        }
    )
    app = build_app(settings, run_operations=False)
    with TestClient(app) as test_client:
        yield test_client


def _sign_in(client: TestClient[Any], name: str) -> str:
    r = client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()["csrf_token"]


def test_anonymous_visitors_are_sent_to_sign_in(client: TestClient[Any]) -> None:
    for path in ("/deployments", "/deploy", "/deployments/some-name?op=x"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=%2F"), r.headers["location"]
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    # A stale session cookie is no error on a page: sign in again.
    client.cookies.set("shipstack_session", "stale")
    assert client.get("/deployments", follow_redirects=False).status_code == 303
    client.cookies.clear()
    r = client.get("/login?next=//evil.example/")
    assert r.status_code == 200 and 'name="next" value="/deployments"' in r.text
    r = client.get("/static/shipstack.css")
    assert r.status_code == 200 and "css" in r.headers["content-type"]


def test_pages_of_a_signed_in_user(client: TestClient[Any]) -> None:
    seed = Seed(context_of(client.app.state).db.writes)
    alice = seed.user("alice", password=PASSWORD)
    bob = seed.user("bob", password=PASSWORD)
    team = seed.team("blue", alice)
    seed.deployment("alice-web", alice, status="Ready", visibility="public")
    seed.deployment("team-db", alice, team=team, status="Pending", visibility="internal")
    seed.deployment("bobs-app", bob, status="Ready", visibility="public")
    csrf = _sign_in(client, "alice")

    r = client.get("/deployments")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert r.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "alice-web" in r.text and "team-db" in r.text and "bobs-app" not in r.text
    assert f'<meta name="csrf-token" content="{csrf}">' in r.text
    # The team filter (the list route's team_id), and a team the user is not in.
    r = client.get(f"/deployments?team_id={team.id}")
    assert "team-db" in r.text and "alice-web" not in r.text
    assert 'data-list-url="/api/deployments?team_id=' in r.text
    assert client.get("/deployments?team_id=999").status_code == 403

    r = client.get("/deploy")
    assert r.status_code == 200
    assert 'value="nginx"' in r.text and 'id="tpl-postgres-POSTGRES_PASSWORD"' in r.text

    r = client.get("/deployments/alice-web")
    assert r.status_code == 200
    for section in ("overview", "config", "auto-update", "logs", "metrics", "events", "history", "delete"):
        assert f'id="{section}"' in r.text, section
    assert re.search(r'<form method="post" action="/api/deployments/delete"', r.text)
    assert f'name="_csrf" value="{csrf}"' in r.text

    # Another user's deployment is a 404 page, like the API's 404.
    r = client.get("/deployments/bobs-app")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    assert "Deployment &#39;bobs-app&#39; not found" in r.text


def test_delete_and_sign_out_forms_need_the_csrf_field(client: TestClient[Any]) -> None:
    seed = Seed(context_of(client.app.state).db.writes)
    alice = seed.user("alice", password=PASSWORD)
    seed.deployment("alice-web", alice, status="Ready", visibility="public")
    csrf = _sign_in(client, "alice")

    form = {"deployment_name": "alice-web"}
    r = client.post("/api/deployments/delete", data=form, follow_redirects=False)
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    r = client.post("/api/deployments/delete", data={**form, "_csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/deployments"
    assert "Deleting" in client.get("/deployments").text

    assert client.post("/api/auth/logout?next=/login", data={}, follow_redirects=False).status_code == 403
    r = client.post("/api/auth/logout?next=/login", data={"_csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.get("/deployments", follow_redirects=False).status_code == 303


def _scripts(html: str) -> list[str]:
    return re.findall(r'<script src="([^"]+)" defer></script>', html)


def test_every_script_the_pages_load_is_served_as_javascript_with_the_headers(client: TestClient[Any]) -> None:
    """Each page loads static/shipstack.js, then its own scripts (static/pages/*.js, the
    deployment page's static/detail/*.js and charts.js), in that order, all `defer`; each
    answers 200 with its file's content, a JavaScript content type and the security
    headers. Every script in static/ is loaded by some page."""
    from api.pages.routes import STATIC_DIR

    seed = Seed(context_of(client.app.state).db.writes)
    alice = seed.user("alice", password=PASSWORD)
    seed.deployment("alice-web", alice, status="Ready", visibility="public")
    detail = [f"/static/detail/{section}.js" for section in ("operations", "status", "config", "auto-update", "logs")]
    detail += ["/static/charts.js"]
    detail += [f"/static/detail/{section}.js" for section in ("metrics", "events", "history")]
    expected = {
        "/login": ["/static/shipstack.js", "/static/pages/login.js"],
        "/deployments": ["/static/shipstack.js", "/static/pages/list.js"],
        "/deploy": ["/static/shipstack.js", "/static/pages/create.js"],
        "/deployments/alice-web": ["/static/shipstack.js", *detail],
        "/deployments/nope": ["/static/shipstack.js"],  # the error page
    }
    html = {"/login": client.get("/login").text}  # signed out: signed in, it redirects
    _sign_in(client, "alice")
    html.update((path, client.get(path).text) for path in expected if path != "/login")
    loaded: set[str] = set()
    for path, scripts in expected.items():
        assert _scripts(html[path]) == scripts, path
        loaded.update(scripts)
    for src in sorted(loaded):
        r = client.get(src)
        assert r.status_code == 200, src
        assert "javascript" in r.headers["content-type"], src
        assert r.content == (STATIC_DIR / src.removeprefix("/static/")).read_bytes(), src
        assert "script-src 'self'" in r.headers["content-security-policy"], src
        assert r.headers["x-content-type-options"] == "nosniff", src
    on_disk = {"/static/" + str(f.relative_to(STATIC_DIR)) for f in STATIC_DIR.rglob("*.js")}
    assert on_disk == loaded


def test_every_page_response_carries_the_security_headers(client: TestClient[Any]) -> None:
    """Pages, their error pages, redirects to /login and the static files: nosniff, a
    CSP that forbids framing, a same-origin Referrer-Policy; pages are never cached."""
    seed = Seed(context_of(client.app.state).db.writes)
    seed.user("alice", password=PASSWORD)

    def check(path: str, *, page: bool) -> None:
        r = client.get(path, follow_redirects=False)
        h = r.headers
        assert h["x-content-type-options"] == "nosniff", path
        assert "frame-ancestors 'none'" in h["content-security-policy"], path
        assert "script-src 'self'" in h["content-security-policy"], path
        assert h["referrer-policy"] == "same-origin", path
        assert h["x-frame-options"] == "DENY", path
        if page:
            assert h["cache-control"] == "no-store", path

    anonymous = ["/", "/login", "/deployments", "/deploy", "/deployments/nope?op=1"]
    for path in anonymous:
        check(path, page=True)
    assert client.get("/deployments", follow_redirects=False).status_code == 303
    assets = ("/static/shipstack.js", "/static/detail/config.js", "/static/shipstack.css", "/static/missing.js")
    for asset in (*assets, "/static/detail/missing.js"):
        check(asset, page=False)
    _sign_in(client, "alice")
    for path in ("/deployments", "/deploy", "/login"):
        check(path, page=True)
    # Error pages: a deployment that is not there (404) and a bad team (400, 403).
    for path, status in (("/deployments/nope", 404), ("/deployments?team_id=abc", 400), ("/deploy?team_id=9", 403)):
        assert client.get(path).status_code == status, path
        check(path, page=True)
