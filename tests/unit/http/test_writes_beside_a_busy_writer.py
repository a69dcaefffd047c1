"""Every write the API takes through a request's session succeeds while another
process keeps committing to the same database (a worker's leases, the scheduler,
running operations). On SQLite a transaction that reads before it writes must take
the write lock up front: a deferred one fails with "database is locked" (a 503) when
a commit lands between its read and its write."""

from __future__ import annotations

from litestar.testing import TestClient

from api.auth.principal import ADMIN, READ
from api.http.context import context_of
from tests.concurrent import busy_writer
from tests.seed import Seed, bearer


def test_account_and_key_writes_succeed_beside_a_busy_writer(client: TestClient, seed: Seed) -> None:
    root = bearer(seed.key(seed.user("root", admin=True), (ADMIN,)))
    with busy_writer(context_of(client.app.state).db.engine):
        for round_ in range(3):
            _account_and_key_writes(client, root, round_)


def _account_and_key_writes(client: TestClient, root: dict[str, str], round_: int) -> None:
    bob = client.post("/api/admin/users", json={"name": f"bob{round_}", "password": "long enough"}, headers=root)
    assert bob.status_code == 201, bob.text
    bob_id = bob.json()["id"]
    carol_id = client.post("/api/admin/users", json={"name": f"carol{round_}"}, headers=root).json()["id"]
    tier = client.put(f"/api/admin/users/{bob_id}/tier", json={"tier": "business"}, headers=root)
    assert tier.status_code == 200, tier.text
    team = client.post("/api/admin/teams", json={"name": f"red{round_}", "owner_user_id": bob_id}, headers=root)
    assert team.status_code == 201, team.text
    team_id = team.json()["id"]
    team_tier = client.put(f"/api/admin/teams/{team_id}/tier", json={"tier": "business"}, headers=root)
    assert team_tier.status_code == 200, team_tier.text
    added = client.post(f"/api/admin/teams/{team_id}/members", json={"user_id": carol_id}, headers=root)
    assert added.status_code == 200, added.text
    removed = client.delete(f"/api/admin/teams/{team_id}/members/{carol_id}", headers=root)
    assert removed.status_code == 204, removed.text

    made = client.post("/api/admin/keys", json={"user_id": bob_id, "scopes": [READ]}, headers=root)
    assert made.status_code == 201, made.text
    bob_key = bearer(made.json()["key"])
    own = client.post("/api/keys", json={"scopes": [READ]}, headers=bob_key)
    assert own.status_code == 201, own.text
    revoked = client.post(f"/api/keys/{own.json()['prefix']}/revoke", headers=bob_key)
    assert revoked.status_code == 200, revoked.text
    by_admin = client.post(f"/api/admin/keys/{made.json()['prefix']}/revoke", headers=root)
    assert by_admin.status_code == 200, by_admin.text

    client.cookies.clear()
    login = client.post("/api/auth/login", json={"name": f"bob{round_}", "password": "long enough"})
    assert login.status_code == 200, login.text
    out = client.post("/api/auth/logout", headers={"X-CSRF-Token": login.json()["csrf_token"]})
    assert out.status_code == 204, out.text


def test_no_handler_that_may_write_takes_the_read_session(client: TestClient) -> None:
    """`db_session` (deferred) is for reads: a POST, PUT, PATCH or DELETE handler
    that took it would bring back the failure above."""
    writers = [
        f"{sorted(handler.http_methods)} {route.path}"
        for route in client.app.routes
        for handler in getattr(route, "route_handlers", [])
        if handler.http_methods - {"GET", "HEAD", "OPTIONS"} and "db_session" in handler.parsed_fn_signature.parameters
    ]
    assert writers == []
