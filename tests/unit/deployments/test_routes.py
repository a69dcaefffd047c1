"""Walk every route of the assembled app (account routes plus, when importable, the
deployment routes): nothing but the declared public routes answers without valid
credentials. Plus the OpenAPI document and docs UI."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from api.accounts import routes as admin
from api.auth import routes as auth_routes
from api.auth.principal import ADMIN, READ, WRITE
from api.http.context import context_of
from stacks.settings import Settings
from tests.seed import MakeClient, Seed, bearer

PUBLIC_ROUTES = {
    ("GET", "/api/health"),
    ("GET", "/api/openapi.json"),
    ("POST", "/api/auth/login"),
}


def http_endpoints(app: Litestar) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for route in app.routes:
        # The docs UI is public; pages are `auth_optional` (anonymous -> /login, tested
        # in tests/browser/test_pages_http.py) and the static files public.
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/api/") or route.path.startswith("/api/docs"):
            continue
        for method, entry in route.route_handler_map.items():
            if method in ("OPTIONS", "HEAD"):
                continue
            handler = entry[0] if isinstance(entry, tuple) else entry
            found.append((method, route.path, handler.opt))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+):(\w+)\}", lambda m: "1" if m.group(2) == "int" else "some-name", path)


@pytest.fixture
def full_app(make_settings: Callable[..., Settings], make_client: MakeClient) -> TestClient[Litestar]:
    return make_client(make_settings())


def test_every_non_public_route_requires_valid_credentials(full_app: TestClient[Litestar]) -> None:
    seed = Seed(context_of(full_app.app.state).db.reads)
    root = seed.user("root", admin=True)
    full = (READ, WRITE, ADMIN)
    bad = {
        "none": {},
        "garbage": bearer("garbage"),
        "expired": bearer(seed.key(root, full, expired=True)),
        "revoked": bearer(seed.key(root, full, revoked=True)),
        "stale cookie": {"Cookie": "shipstack_session=not-a-session"},
    }
    public, failures = set(), []
    for method, path, opt in http_endpoints(full_app.app):
        if opt.get("public"):
            public.add((method, path))
            continue
        for label, headers in bad.items():
            response = full_app.request(method, concrete(path), headers=headers, json={})
            if response.status_code != 401 or response.json().get("code") != "unauthorized":
                failures.append(f"{method} {path} [{label}] -> {response.status_code}")
    assert failures == []
    assert public == PUBLIC_ROUTES


def test_account_handlers_all_carry_a_scope_guard() -> None:
    """Our handlers authorize with `require_scope` guards (visible in code review and here)."""
    handlers: list[Any] = list(auth_routes.ROUTES)
    handlers += [getattr(admin.AdminController, n) for n in dir(admin.AdminController)]
    checked = 0
    for handler in handlers:
        if not hasattr(handler, "http_methods") or handler.opt.get("public"):
            continue
        guards = list(handler.guards or [])
        if handler in [getattr(admin.AdminController, n) for n in dir(admin.AdminController)]:
            guards += list(admin.AdminController.guards)
        assert any(hasattr(g, "required_scopes") for g in guards), handler
        checked += 1
    assert checked >= 15


def test_openapi_document(client: TestClient[Litestar]) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["cookie"]["type"] == "apiKey" and schemes["cookie"]["in"] == "cookie"
    assert schemes["cookie"]["name"] == "shipstack_session"
    assert {"bearer": []} in doc["security"] and {"cookie": []} in doc["security"]
    paths = doc["paths"]
    create_user = paths["/api/admin/users"]["post"]
    body_ref = create_user["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref.endswith("UserCreate")
    assert paths["/api/admin/users"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["items"][
        "$ref"
    ].endswith("UserOut")
    # Errors are documented with the one error shape, not Litestar's default.
    for status in ("400", "401", "403", "429"):
        schema = create_user["responses"][status]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("ErrorBody")
    assert set(doc["components"]["schemas"]["ErrorBody"]["required"]) == {"error", "code"}
    login = paths["/api/auth/login"]["post"]
    assert set(login["requestBody"]["content"]) == {"application/json", "application/x-www-form-urlencoded"}
    # Every JSON request body of ours is a named (msgspec Struct) schema.
    for path, item in paths.items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content and path != "/api/auth/login":
                assert "$ref" in content["schema"], (method, path)


def test_docs_ui(client: TestClient[Litestar]) -> None:
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "swagger" in response.text.lower()
    assert client.get("/api/docs/openapi.json").status_code == 200


def test_health_is_public(client: TestClient[Litestar]) -> None:
    assert client.get("/api/health").json() == {"status": "ok", "workers": 0}  # this app runs no operations
