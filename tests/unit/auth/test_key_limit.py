"""A user holds at most SHIPSTACK_MAX_API_KEYS live keys (a fair share: every key is a
credential checked on each request and re-checked on each open stream). Revoked and
expired keys do not count; one more is a 409 `key_limit` that creates nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.auth.principal import ADMIN, READ, WRITE
from persistence.models import ApiKey
from stacks.settings import Settings
from tests.seed import Seed, bearer

LIMIT = 3


@pytest.fixture
def app_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(SHIPSTACK_MAX_API_KEYS=str(LIMIT))


def _keys(db_factory: sessionmaker[Session]) -> int:
    with db_factory() as db:
        return db.scalar(select(func.count()).select_from(ApiKey)) or 0


def test_one_key_past_the_limit_is_refused_until_one_is_revoked(
    client: TestClient[Litestar], seed: Seed, db_factory: sessionmaker[Session]
) -> None:
    bob = seed.key(seed.user("bob"))
    seed.key(seed.user("carol"))  # another user's keys count for her, not for bob
    seed.key(seed.user("bob2"))
    made = [client.post("/api/keys", json={"scopes": [READ]}, headers=bearer(bob)) for _ in range(LIMIT - 1)]
    assert [r.status_code for r in made] == [201] * (LIMIT - 1)

    before = _keys(db_factory)
    refused = client.post("/api/keys", json={"scopes": [READ]}, headers=bearer(bob))
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "key_limit"
    assert "SHIPSTACK_MAX_API_KEYS" in refused.json()["error"] and "revoke one" in refused.json()["error"]
    assert _keys(db_factory) == before

    prefix = made[0].json()["prefix"]
    assert client.post(f"/api/keys/{prefix}/revoke", headers=bearer(bob)).status_code == 200
    assert client.post("/api/keys", json={"scopes": [READ]}, headers=bearer(bob)).status_code == 201


def test_expired_keys_do_not_count_and_the_admin_route_keeps_the_limit_too(
    client: TestClient[Litestar], seed: Seed
) -> None:
    admin = seed.key(seed.user("root", admin=True), (READ, WRITE, ADMIN))
    dave = seed.user("dave")
    for _ in range(LIMIT):
        seed.key(dave, expired=True)
    for _ in range(LIMIT):
        created = client.post("/api/admin/keys", json={"user_id": dave.id, "scopes": [READ]}, headers=bearer(admin))
        assert created.status_code == 201, created.text
    refused = client.post("/api/admin/keys", json={"user_id": dave.id, "scopes": [READ]}, headers=bearer(admin))
    assert refused.status_code == 409 and refused.json()["code"] == "key_limit", refused.text
    assert "'dave'" in refused.json()["error"]
