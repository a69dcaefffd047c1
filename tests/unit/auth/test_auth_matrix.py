"""Authorization matrix: every account route against every kind of credential.

Rows are routes, columns are credentials; each cell is the exact status code. The
credentials: none, malformed, unknown (well-formed, not issued), expired, revoked,
read-only (the admin's own key with only deployments:read), another user's key,
another team's key (bound to a team the admin is not in), and the right key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.accounts import routes as admin
from api.auth import routes as auth_routes
from api.auth.credentials import new_api_key
from api.auth.principal import ADMIN, READ, WRITE
from tests.seed import Seed, bearer

CREDENTIALS = (
    "none",
    "malformed",
    "unknown",
    "expired",
    "revoked",
    "read_only",
    "other_user",
    "other_team",
    "right",
)
UNAUTHENTICATED = ("none", "malformed", "unknown", "expired", "revoked")


@dataclass
class World:
    headers: dict[str, dict[str, str]]
    ids: dict[str, Any]


@pytest.fixture
def world(seed: Seed) -> World:
    admin = seed.user("root", admin=True)
    bob = seed.user("bob")
    carol = seed.user("carol")
    mallory = seed.user("mallory")
    eve = seed.user("eve")
    red = seed.team("red", bob, members=[carol])
    seed.team("blue", eve)
    blue_key = seed.key(eve, (READ, WRITE), team=seed_team(seed, "blue"))
    full = (READ, WRITE, ADMIN)
    keys = {
        "malformed": "not-a-key",
        "unknown": new_api_key()[0],
        "expired": seed.key(admin, full, expired=True),
        "revoked": seed.key(admin, full, revoked=True),
        "read_only": seed.key(admin, (READ,)),
        "other_user": seed.key(mallory, (READ, WRITE)),
        "other_team": blue_key,
        "right": seed.key(admin, full),
    }
    headers = {"none": {}} | {name: bearer(key) for name, key in keys.items()}
    spare = seed.key(admin, (READ,))
    bob_key = seed.key(bob, (READ,))
    return World(
        headers=headers,
        ids={
            "bob": bob.id,
            "carol": carol.id,
            "red": red.id,
            "spare_prefix": spare[:12],
            "bob_key_prefix": bob_key[:12],
        },
    )


def seed_team(seed: Seed, name: str) -> Any:
    from persistence.accounts import get_team_by_name

    with seed.factory() as db:
        return get_team_by_name(db, name)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    body: Callable[[dict[str, Any]], Any] | None
    ok: int
    # Expected status per authenticated credential; missing ones use `ok`.
    authenticated: dict[str, int]


def admin_route(method: str, path: str, ok: int, body: Callable[[dict[str, Any]], Any] | None = None) -> Route:
    return Route(method, path, body, ok, {"read_only": 403, "other_user": 403, "other_team": 403})


ROUTES = [
    admin_route("POST", "/api/admin/users", 201, lambda ids: {"name": "newbie", "password": "correct horse"}),
    admin_route("GET", "/api/admin/users", 200),
    admin_route("PUT", "/api/admin/users/{bob}/tier", 200, lambda ids: {"tier": "business"}),
    admin_route("POST", "/api/admin/teams", 201, lambda ids: {"name": "green", "owner_user_id": ids["bob"]}),
    admin_route("GET", "/api/admin/teams", 200),
    admin_route("PUT", "/api/admin/teams/{red}/tier", 200, lambda ids: {"tier": "enterprise"}),
    admin_route("GET", "/api/admin/teams/{red}/members", 200),
    admin_route("POST", "/api/admin/teams/{red}/members", 200, lambda ids: {"user_id": ids["bob"], "role": "owner"}),
    admin_route("DELETE", "/api/admin/teams/{red}/members/{carol}", 204),
    admin_route("POST", "/api/admin/keys", 201, lambda ids: {"user_id": ids["bob"], "scopes": ["deployments:read"]}),
    admin_route("GET", "/api/admin/keys", 200),
    admin_route("POST", "/api/admin/keys/{bob_key_prefix}/revoke", 200),
    admin_route("GET", "/api/admin/billing/events", 200),
    Route("GET", "/api/auth/me", None, 200, {}),
    Route("GET", "/api/keys", None, 200, {}),
    # A read-only key cannot mint a write key; the others can (the team key inherits its team).
    Route("POST", "/api/keys", lambda ids: {"scopes": ["deployments:write"]}, 201, {"read_only": 403}),
    # The spare key is the admin's: other users and teams are told it does not exist.
    Route("POST", "/api/keys/{spare_prefix}/revoke", None, 200, {"other_user": 404, "other_team": 404}),
    Route("POST", "/api/auth/logout", None, 204, {}),
]


def expected_row(route: Route) -> dict[str, int]:
    row = {c: 401 for c in UNAUTHENTICATED}
    for cred in CREDENTIALS[len(UNAUTHENTICATED) :]:
        row[cred] = route.authenticated.get(cred, route.ok)
    return row


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_authorization_matrix(client: TestClient[Litestar], world: World, route: Route) -> None:
    path = route.path.format(**world.ids)
    actual: dict[str, int] = {}
    # "right" last: its successful write must not change what the others see.
    for cred in CREDENTIALS:
        kwargs: dict[str, Any] = {"headers": world.headers[cred]}
        if route.body is not None:
            kwargs["json"] = route.body(world.ids)
        response = client.request(route.method, path, **kwargs)
        actual[cred] = response.status_code
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error", "code"}, body
            expected_code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}[response.status_code]
            assert body["code"] == expected_code, body
        if response.status_code == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert actual == expected_row(route)


def test_every_account_route_is_in_the_matrix(client: TestClient[Litestar]) -> None:
    """A new account route must be added above, so it cannot ship unchecked."""
    covered = {(r.method, r.path.split("{")[0]) for r in ROUTES}
    handlers = list(auth_routes.ROUTES)
    declared = set()
    for handler in handlers:
        if handler.opt.get("public"):
            continue
        for path in handler.paths:
            for method in handler.http_methods:
                declared.add((method, path.split("{")[0]))
    for name in dir(admin.AdminController):
        handler = getattr(admin.AdminController, name)
        if hasattr(handler, "http_methods"):
            for path in handler.paths:
                for method in handler.http_methods:
                    declared.add((method, "/api/admin" + path.split("{")[0]))
    assert declared <= covered, declared - covered
