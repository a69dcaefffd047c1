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

from api.accounts import service as accounts
from api.auth.principal import ADMIN, READ, WRITE
from api.errors import Conflict
from api.http.context import context_of
from persistence.base import utcnow
from persistence.keys import count_live_keys
from persistence.models import ApiKey, User
from stacks.settings import Settings
from tests.concurrent import errors_when_run_at_once
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


def test_keys_asked_for_at_once_stop_at_the_limit(client: TestClient[Litestar], seed: Seed) -> None:
    """Six requests for the last free slot, at once (from several replicas, say): one
    key is made, the other five are refused, and the user holds the limit, not more."""
    bob = seed.user("bob")
    for _ in range(LIMIT - 1):
        seed.key(bob)
    writes = context_of(client.app.state).db.writes
    made: list[str] = []

    def ask() -> None:
        with writes() as db:
            _, key = accounts.issue_api_key(db, db.get(User, bob.id), scopes=[READ], max_keys=LIMIT)
            db.commit()
            made.append(key)

    errors = errors_when_run_at_once(ask, 6)
    assert len(made) == 1
    assert len(errors) == 5 and all(isinstance(e, Conflict) and e.code == "key_limit" for e in errors)
    with writes() as db:
        assert count_live_keys(db, bob.id, utcnow()) == LIMIT
