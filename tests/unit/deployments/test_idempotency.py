"""`Idempotency-Key` replays the first response only to the same credential in the same
team context; another key of the same user, or the same key acting for a team, gets a
409 and starts nothing. Keys are per user: another user's equal key is their own."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from persistence.models import Deployment, Operation
from tests.seed import Seed, bearer

CREATE = {"template": "nginx", "name": "shop"}


def _counts(db_factory: sessionmaker[Session]) -> tuple[int, int]:
    with db_factory() as db:
        deployments = db.scalar(select(func.count()).select_from(Deployment)) or 0
        operations = db.scalar(select(func.count()).select_from(Operation)) or 0
    return deployments, operations


def test_a_replay_needs_the_same_credential_and_team(
    client: TestClient[Litestar], seed: Seed, db_factory: sessionmaker[Session]
) -> None:
    alice = seed.user("alice")
    red = seed.team("red", alice)
    first_key, second_key = seed.key(alice), seed.key(alice)
    once = {"Idempotency-Key": "create-shop"}

    first = client.post("/api/deployments", json=CREATE, headers={**bearer(first_key), **once})
    assert first.status_code == 201, first.text
    again = client.post("/api/deployments", json=CREATE, headers={**bearer(first_key), **once})
    assert (again.status_code, again.json()) == (201, first.json())
    assert _counts(db_factory) == (1, 1)

    other_credential = client.post("/api/deployments", json=CREATE, headers={**bearer(second_key), **once})
    assert other_credential.status_code == 409, other_credential.text
    assert other_credential.json()["code"] == "idempotency_key_reused"
    as_team = client.post(
        "/api/deployments", json=CREATE, headers={**bearer(first_key), **once, "X-Team-Id": str(red.id)}
    )
    assert as_team.status_code == 409 and as_team.json()["code"] == "idempotency_key_reused", as_team.text
    assert _counts(db_factory) == (1, 1)

    bob = seed.key(seed.user("bob"))
    theirs = client.post("/api/deployments", json={**CREATE, "name": "bobshop"}, headers={**bearer(bob), **once})
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["operationId"] != first.json()["operationId"]
    assert _counts(db_factory) == (2, 2)
