"""Admin API flows: users, teams, membership, keys, tiers and billing events."""

from __future__ import annotations

from litestar.testing import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.accounts import service as accounts
from api.auth.principal import ADMIN, READ, WRITE
from api.errors import Conflict
from api.http.context import context_of
from persistence.accounts import count_owners, get_user_by_name
from persistence.billing import record_billing_event
from persistence.models import Team, User
from tests.concurrent import errors_when_run_at_once
from tests.seed import Seed, bearer


def test_users_teams_membership(client: TestClient, seed: Seed) -> None:
    h = bearer(seed.key(seed.user("root", admin=True), (ADMIN,)))
    bob = client.post("/api/admin/users", json={"name": "bob", "password": "long enough"}, headers=h).json()
    carol = client.post("/api/admin/users", json={"name": "carol", "tier": "business"}, headers=h).json()
    assert bob["has_password"] is True and carol["has_password"] is False and carol["tier"] == "business"
    assert "password" not in bob
    short = client.post("/api/admin/users", json={"name": "dan", "password": "short"}, headers=h)
    assert short.status_code == 400
    assert [u["name"] for u in client.get("/api/admin/users", headers=h).json()] == ["root", "bob", "carol"]

    team = client.post("/api/admin/teams", json={"name": "red", "owner_user_id": bob["id"]}, headers=h)
    assert team.status_code == 201
    red = team.json()
    assert (
        client.post("/api/admin/teams", json={"name": "red", "owner_user_id": bob["id"]}, headers=h).status_code == 409
    )
    assert client.post("/api/admin/teams", json={"name": "x", "owner_user_id": 999}, headers=h).status_code == 404

    added = client.post(f"/api/admin/teams/{red['id']}/members", json={"user_id": carol["id"]}, headers=h)
    assert added.json() == {"team_id": red["id"], "user_id": carol["id"], "user_name": "carol", "role": "member"}
    members = client.get(f"/api/admin/teams/{red['id']}/members", headers=h).json()
    assert {(m["user_name"], m["role"]) for m in members} == {("bob", "owner"), ("carol", "member")}
    # The last owner can be neither removed nor demoted.
    assert client.delete(f"/api/admin/teams/{red['id']}/members/{bob['id']}", headers=h).status_code == 409
    demote = client.post(f"/api/admin/teams/{red['id']}/members", json={"user_id": bob["id"]}, headers=h)
    assert demote.status_code == 409
    promote = {"user_id": carol["id"], "role": "owner"}
    assert client.post(f"/api/admin/teams/{red['id']}/members", json=promote, headers=h).status_code == 200
    assert client.delete(f"/api/admin/teams/{red['id']}/members/{bob['id']}", headers=h).status_code == 204
    assert client.delete(f"/api/admin/teams/{red['id']}/members/{bob['id']}", headers=h).status_code == 404
    # The membership is visible to the member's own credentials.
    carol_key = seed.key(seed_user(seed, "carol"), (READ,))
    assert client.get("/api/auth/me", headers=bearer(carol_key)).json()["teams"] == [
        {"team_id": red["id"], "role": "owner"}
    ]


def seed_user(seed: Seed, name: str) -> User:
    with seed.factory() as db:
        user = get_user_by_name(db, name)
        assert user is not None
        return user


def test_tier_changes_write_billing_events(client: TestClient, seed: Seed) -> None:
    root = seed.user("root", admin=True)
    h = bearer(seed.key(root, (ADMIN,)))
    bob = seed.user("bob")
    team = seed.team("red", bob)
    assert client.put(f"/api/admin/users/{bob.id}/tier", json={"tier": "business"}, headers=h).json()["tier"] == (
        "business"
    )
    # Unchanged tier: no event.
    client.put(f"/api/admin/users/{bob.id}/tier", json={"tier": "business"}, headers=h)
    assert client.put(f"/api/admin/teams/{team.id}/tier", json={"tier": "enterprise"}, headers=h).status_code == 200
    assert client.put(f"/api/admin/users/{bob.id}/tier", json={"tier": "gold"}, headers=h).status_code == 400
    assert client.put("/api/admin/users/999/tier", json={"tier": "free"}, headers=h).status_code == 404
    events = client.get("/api/admin/billing/events", headers=h).json()
    assert [(e["kind"], e["user_id"], e["team_id"], e["detail"]) for e in events] == [
        ("tier.changed", root.id, team.id, {"from": "free", "to": "enterprise"}),
        ("tier.changed", bob.id, None, {"from": "free", "to": "business"}),
    ]


def test_billing_events_list_filters_and_pages(client: TestClient, seed: Seed) -> None:
    root = seed.user("root", admin=True)
    h = bearer(seed.key(root, (ADMIN,)))
    bob = seed.user("bob")
    with seed.factory() as db:
        for i in range(5):
            record_billing_event(db, "deployment.created", user_id=bob.id, deployment_name=f"app{i}", template="nginx")
        record_billing_event(db, "deployment.deleted", user_id=bob.id, deployment_name="app0", template="nginx")
        db.commit()
    page = client.get("/api/admin/billing/events", params={"limit": 2}, headers=h).json()
    assert [e["deployment_name"] for e in page] == ["app0", "app4"]
    assert page[0]["kind"] == "deployment.deleted" and page[0]["template"] == "nginx" and page[0]["at"]
    nxt = client.get("/api/admin/billing/events", params={"limit": 2, "before_id": page[-1]["id"]}, headers=h).json()
    assert [e["deployment_name"] for e in nxt] == ["app3", "app2"]
    created = client.get("/api/admin/billing/events", params={"kind": "deployment.created"}, headers=h).json()
    assert len(created) == 5
    assert client.get("/api/admin/billing/events", params={"kind": "bogus"}, headers=h).status_code == 400


def test_admin_key_management(client: TestClient, seed: Seed) -> None:
    h = bearer(seed.key(seed.user("root", admin=True), (ADMIN,)))
    bob = seed.user("bob")
    red = seed.team("red", bob)
    made = client.post(
        "/api/admin/keys",
        json={"user_id": bob.id, "scopes": [READ, WRITE], "team_id": red.id, "name": "ci", "expires_days": 1},
        headers=h,
    ).json()
    assert made["team_id"] == red.id and made["expires_at"]
    not_member = client.post(
        "/api/admin/keys", json={"user_id": seed.user("eve").id, "scopes": [READ], "team_id": red.id}, headers=h
    )
    assert not_member.status_code == 400
    listed = client.get("/api/admin/keys", params={"user_id": bob.id}, headers=h).json()
    assert [k["prefix"] for k in listed] == [made["prefix"]]
    assert client.post(f"/api/admin/keys/{made['prefix']}/revoke", headers=h).json()["status"] == "revoked"
    assert client.get("/api/auth/me", headers=bearer(made["key"])).status_code == 401
    assert client.post("/api/admin/keys/ssk_00000000/revoke", headers=h).status_code == 404


def test_a_team_keeps_an_owner_when_its_owners_are_removed_at_once(client: TestClient, seed: Seed) -> None:
    """Two admins (or replicas) each removing one of a team's two owners at once: one
    removal goes through, the other is refused, and the team keeps an owner."""
    writes = context_of(client.app.state).db.writes
    bob, carol = seed.user("bob"), seed.user("carol")
    for round_ in range(5):
        team = seed.team(f"red{round_}", bob)
        with writes() as db:
            accounts.set_team_member(db, db.get(Team, team.id), db.get(User, carol.id), "owner")
            db.commit()
        errors = _remove_at_once(writes, team.id, [bob.id, carol.id])
        assert [type(e) for e in errors] == [Conflict], errors
        with writes() as db:
            assert count_owners(db, team.id) == 1


def _remove_at_once(writes: sessionmaker[Session], team_id: int, user_ids: list[int]) -> list[BaseException]:
    """Each member in `user_ids` removed from the team by a thread of its own, all at once."""
    leaving = iter(user_ids)

    def remove() -> None:
        user_id = next(leaving)
        with writes() as db:
            accounts.remove_team_member(db, accounts.require_team(db, team_id), accounts.require_user(db, user_id))
            db.commit()

    return errors_when_run_at_once(remove, len(user_ids))
