"""Per-credential rate limiting: 429 with Retry-After, one bucket per key."""

from __future__ import annotations

from collections.abc import Callable

from api.http.context import context_of
from stacks.settings import Settings
from tests.seed import MakeClient, Seed, bearer


def test_each_key_gets_its_own_budget(make_settings: Callable[..., Settings], make_client: MakeClient) -> None:
    client = make_client(make_settings(SHIPSTACK_RATE_LIMIT="3"))
    seed = Seed(context_of(client.app.state).db.reads)
    bob = seed.user("bob")
    first, second = seed.key(bob), seed.key(bob)
    for _ in range(3):
        assert client.get("/api/auth/me", headers=bearer(first)).status_code == 200
    limited = client.get("/api/auth/me", headers=bearer(first))
    assert limited.status_code == 429
    assert limited.json() == {"error": "Rate limit of 3 requests per minute exceeded", "code": "rate_limited"}
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 60
    # Writes are limited too, and another key of the same user is not affected.
    assert client.post("/api/keys", json={"scopes": ["deployments:read"]}, headers=bearer(first)).status_code == 429
    assert client.get("/api/auth/me", headers=bearer(second)).status_code == 200


def test_bad_credentials_are_not_counted_against_a_key(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    client = make_client(make_settings(SHIPSTACK_RATE_LIMIT="2"))
    seed = Seed(context_of(client.app.state).db.reads)
    key = seed.key(seed.user("bob"))
    for _ in range(5):
        assert client.get("/api/auth/me", headers=bearer(key[:-2] + "xx")).status_code == 401
    assert client.get("/api/auth/me", headers=bearer(key)).status_code == 200


def test_zero_disables_the_limit(make_settings: Callable[..., Settings], make_client: MakeClient) -> None:
    client = make_client(make_settings(SHIPSTACK_RATE_LIMIT="0"))
    seed = Seed(context_of(client.app.state).db.reads)
    key = seed.key(seed.user("bob"))
    assert all(client.get("/api/auth/me", headers=bearer(key)).status_code == 200 for _ in range(20))
