"""Input the document calls invalid is a 400 naming the field, never a 500 and never
silently read as something else (each case was found by schemathesis)."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient

from api.auth.principal import ADMIN, READ, WRITE
from tests.seed import Seed, bearer

HUGE = "99999999999999999999999"  # past int64: the database driver overflowed (500)


def test_ids_past_what_the_database_holds_are_400(client: TestClient[Litestar], seed: Seed) -> None:
    root = seed.user("root", admin=True)
    admin = bearer(seed.key(root, (ADMIN,)))
    team = seed.team("blue", root)
    answers = {
        "billing before_id": client.get(f"/api/admin/billing/events?before_id=-{HUGE}", headers=admin),
        "keys user_id": client.get(f"/api/admin/keys?user_id={HUGE}", headers=admin),
        "path team_id": client.delete(f"/api/admin/teams/{HUGE}/members/1", headers=admin),
        "body user_id": client.post(
            f"/api/admin/teams/{team.id}/members", content=f'{{"user_id": {HUGE}}}', headers=admin
        ),
        "body owner_user_id": client.post(
            "/api/admin/teams", content=f'{{"name": "red", "owner_user_id": {HUGE}}}', headers=admin
        ),
    }
    for label, response in answers.items():
        assert response.status_code == 400, (label, response.text)
        assert response.json()["code"] == "bad_request", label
        assert "id" in response.json()["error"], (label, response.text)
    # The bound is generous: a real id far below it is simply not found.
    assert client.put("/api/admin/users/123456789/tier", json={"tier": "free"}, headers=admin).status_code == 404


def test_json_bodies_are_not_coerced(client: TestClient[Litestar], seed: Seed) -> None:
    """`is_admin: 0` created a user (lax conversion read it as false)."""
    admin = bearer(seed.key(seed.user("root", admin=True), (ADMIN,)))
    for body, field in (
        ({"name": "bob", "is_admin": 0}, "is_admin"),
        ({"name": "bob", "is_admin": "true"}, "is_admin"),
        ({"name": "bob", "tier": 1}, "tier"),
    ):
        response = client.post("/api/admin/users", json=body, headers=admin)
        assert response.status_code == 400, body
        assert field in response.json()["error"]
    assert client.get("/api/admin/users", headers=admin).json()[-1]["name"] == "root"
    # A number with a zero fraction is an integer to JSON Schema, so to the service too.
    response = client.post("/api/admin/keys", json={"user_id": 1.0, "scopes": ["admin"]}, headers=admin)
    assert response.status_code == 201, response.text


def test_null_in_an_optional_query_number_is_400_not_everything(client: TestClient[Litestar], seed: Seed) -> None:
    """`?user_id=null` listed every user's keys, as if no filter had been given."""
    root = seed.user("root", admin=True)
    bob = seed.user("bob")
    seed.key(bob, (READ,))
    admin = bearer(seed.key(root, (ADMIN,)))
    response = client.get("/api/admin/keys?user_id=null", headers=admin)
    assert response.status_code == 400 and "user_id" in response.json()["error"]
    assert client.get("/api/admin/billing/events?kind=null", headers=admin).status_code == 400
    mine = client.get(f"/api/admin/keys?user_id={root.id}", headers=admin).json()
    assert {k["user_name"] for k in mine} == {"root"}


def test_options_lists_every_method_of_the_path(client: TestClient[Litestar], seed: Seed) -> None:
    """GET and PUT /api/deployments/config live in two handlers; OPTIONS said only GET."""
    key = bearer(seed.key(seed.user("alice"), (READ, WRITE)))
    expected = {
        "/api/deployments/config": "GET, OPTIONS, PUT",
        "/api/deployments": "GET, OPTIONS, POST",
        "/api/keys": "GET, OPTIONS, POST",
        "/api/deployments/auto-update": "GET, OPTIONS, PUT",
    }
    for path, allow in expected.items():
        response = client.options(path, headers=key)
        assert response.status_code == 204, path
        assert response.headers["allow"] == allow, path


def test_a_rollback_version_past_what_the_database_holds_is_400(client: TestClient[Litestar], seed: Seed) -> None:
    owner = seed.user("owner")
    seed.deployment("web", owner, status="Ready")
    h = bearer(seed.key(owner, (READ, WRITE)))
    response = client.post("/api/deployments/web/rollback", content=f'{{"version": {HUGE}}}', headers=h)
    assert response.status_code == 400, response.text
    assert "version" in response.json()["error"]
    assert client.post("/api/deployments/web/rollback", json={"version": 2**31}, headers=h).status_code == 400
    assert client.post("/api/deployments/web/rollback", json={"version": 2**31 - 1}, headers=h).status_code == 404
