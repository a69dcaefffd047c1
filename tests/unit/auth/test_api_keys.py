"""API keys: shown once, stored hashed, prefix, expiry, revocation, last use, scope narrowing."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from api.auth.credentials import key_prefix
from api.auth.principal import ADMIN, READ, WRITE
from persistence.base import utcnow
from persistence.models import ApiKey
from tests.seed import Seed, bearer


def test_admin_created_key_is_shown_once_and_stored_hashed(
    client: TestClient[Litestar], seed: Seed, db_factory: sessionmaker[Session]
) -> None:
    admin = seed.key(seed.user("root", admin=True), (READ, WRITE, ADMIN))
    bob = seed.user("bob")
    created = client.post(
        "/api/admin/keys",
        json={"user_id": bob.id, "scopes": [READ], "name": "ci", "expires_days": 30},
        headers=bearer(admin),
    )
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith("ssk_") and key_prefix(key) == body["prefix"]
    assert body["scopes"] == [READ] and body["name"] == "ci" and body["status"] == "active"
    # Stored: the prefix and the SHA-256 of the key, nothing else about it.
    with db_factory() as db:
        row = db.scalar(select(ApiKey).where(ApiKey.prefix == body["prefix"]))
        assert row is not None
        assert row.secret_hash == hashlib.sha256(key.encode()).hexdigest()
        dump = " ".join(str(v) for r in db.execute(text("SELECT * FROM api_keys")) for v in r)
    assert key not in dump
    assert key[13:] not in dump
    # Never shown again: listings carry metadata only.
    listing = client.get("/api/admin/keys", headers=bearer(admin))
    assert key[13:] not in listing.text
    assert "key" not in listing.json()[0]
    # And the key works.
    me = client.get("/api/auth/me", headers=bearer(key))
    assert me.status_code == 200
    assert me.json()["user"]["name"] == "bob"


def test_last_used_is_recorded(client: TestClient[Litestar], seed: Seed, db_factory: sessionmaker[Session]) -> None:
    key = seed.key(seed.user("bob"))
    with db_factory() as db:
        assert db.scalar(select(ApiKey.last_used_at)) is None
    before = utcnow()
    assert client.get("/api/auth/me", headers=bearer(key)).status_code == 200
    with db_factory() as db:
        used = db.scalar(select(ApiKey.last_used_at))
    assert used is not None and used >= before - timedelta(seconds=1)


def test_revocation_takes_effect_immediately(client: TestClient[Litestar], seed: Seed) -> None:
    bob = seed.user("bob")
    key, other = seed.key(bob), seed.key(bob)
    assert client.get("/api/auth/me", headers=bearer(key)).status_code == 200
    revoked = client.post(f"/api/keys/{key_prefix(key)}/revoke", headers=bearer(other))
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    response = client.get("/api/auth/me", headers=bearer(key))
    assert response.status_code == 401
    assert response.json() == {"error": "API key revoked", "code": "unauthorized"}


def test_expired_key_is_rejected(client: TestClient[Litestar], seed: Seed) -> None:
    key = seed.key(seed.user("bob"), expired=True)
    response = client.get("/api/auth/me", headers=bearer(key))
    assert response.status_code == 401
    assert response.json()["error"] == "API key expired"


def test_a_tampered_key_is_invalid(client: TestClient[Litestar], seed: Seed) -> None:
    key = seed.key(seed.user("bob"))
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    for value in (tampered, key[:12], "ssk_", "", "Basic Zm9vOmJhcg=="):
        response = client.get("/api/auth/me", headers={"Authorization": f"Bearer {value}" if value else "Bearer"})
        assert response.status_code == 401, value
    assert client.get("/api/auth/me", headers={"Authorization": f"Token {key}"}).status_code == 401


def test_self_service_keys_are_no_wider_than_the_caller(client: TestClient[Litestar], seed: Seed) -> None:
    bob = seed.user("bob")
    read_only = seed.key(bob, (READ,))
    full = seed.key(bob, (READ, WRITE))
    assert client.post("/api/keys", json={"scopes": [WRITE]}, headers=bearer(read_only)).status_code == 403
    assert client.post("/api/keys", json={"scopes": [READ]}, headers=bearer(read_only)).status_code == 201
    # Nobody gets admin through self-service unless they are an admin.
    response = client.post("/api/keys", json={"scopes": [ADMIN]}, headers=bearer(full))
    assert response.status_code == 403
    assert "admin" in response.json()["error"]
    unknown = client.post("/api/keys", json={"scopes": ["root"]}, headers=bearer(full))
    assert unknown.status_code == 400


def test_new_key_cannot_outlive_the_expiring_key_that_made_it(client: TestClient[Litestar], seed: Seed) -> None:
    bob = seed.user("bob")
    limit = utcnow() + timedelta(days=2)
    short = seed.key(bob, (READ,), expires_at=limit)
    forever = client.post("/api/keys", json={"scopes": [READ]}, headers=bearer(short)).json()
    longer = client.post("/api/keys", json={"scopes": [READ], "expires_days": 30}, headers=bearer(short)).json()
    for made in (forever, longer):
        assert made["expires_at"] is not None
        assert made["expires_at"] <= limit.isoformat().replace("+00:00", "Z")


def test_team_bound_key_makes_only_keys_bound_to_its_team(client: TestClient[Litestar], seed: Seed) -> None:
    bob = seed.user("bob")
    red = seed.team("red", bob)
    blue = seed.team("blue", bob)
    bound = seed.key(bob, (READ, WRITE), team=red)
    made = client.post("/api/keys", json={"scopes": [READ]}, headers=bearer(bound))
    assert made.status_code == 201
    assert made.json()["team_id"] == red.id
    other = client.post("/api/keys", json={"scopes": [READ], "team_id": blue.id}, headers=bearer(bound))
    assert other.status_code == 403


def test_admin_scope_is_dropped_when_the_user_stops_being_admin(
    client: TestClient[Litestar], seed: Seed, db_factory: sessionmaker[Session]
) -> None:
    from persistence.models import User

    root = seed.user("root", admin=True)
    key = seed.key(root, (READ, WRITE, ADMIN))
    assert client.get("/api/admin/users", headers=bearer(key)).status_code == 200
    with db_factory() as db:
        db.get(User, root.id).is_admin = False  # type: ignore[union-attr]
        db.commit()
    assert client.get("/api/admin/users", headers=bearer(key)).status_code == 403
    assert client.get("/api/auth/me", headers=bearer(key)).json()["scopes"] == [READ, WRITE]


def test_users_cannot_revoke_or_list_each_others_keys(client: TestClient[Litestar], seed: Seed) -> None:
    alice, bob = seed.user("alice"), seed.user("bob")
    alice_key, bob_key = seed.key(alice), seed.key(bob)
    listed = client.get("/api/keys", headers=bearer(bob_key)).json()
    assert [k["prefix"] for k in listed] == [key_prefix(bob_key)]
    response = client.post(f"/api/keys/{key_prefix(alice_key)}/revoke", headers=bearer(bob_key))
    assert response.status_code == 404
    assert client.get("/api/auth/me", headers=bearer(alice_key)).status_code == 200


def test_admin_cannot_give_admin_scope_to_a_non_admin(client: TestClient[Litestar], seed: Seed) -> None:
    admin = seed.key(seed.user("root", admin=True), (ADMIN,))
    bob = seed.user("bob")
    response = client.post("/api/admin/keys", json={"user_id": bob.id, "scopes": [ADMIN]}, headers=bearer(admin))
    assert response.status_code == 400
