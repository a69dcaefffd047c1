"""The whole service against the real parts: the Litestar app with its
operation runner, the real pulumi engine and provider, the local cluster, and
the database (SQLite, and PostgreSQL when the run has one)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.auth.credentials import new_api_key
from api.http.app import build_app
from api.http.context import context_of
from persistence.accounts import add_user
from persistence.keys import add_key
from stacks.settings import Settings

READ_WRITE = ("deployments:read", "deployments:write")


@dataclass
class Service:
    client: TestClient
    settings: Settings
    headers: dict[str, str]

    def wait_status(self, name: str, want: set[str], timeout: float = 300) -> dict:
        """Polls the public status route until the deployment reaches one of `want`."""
        deadline = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < deadline:
            r = self.client.get(f"/api/deployments/status?name={name}&wait=10", headers=self.headers)
            if r.status_code == 404 and "Gone" in want:
                return {"status": "Gone"}
            assert r.status_code == 200, r.text
            body = r.json()
            if body["status"] in want:
                return body
        pytest.fail(f"{name} did not reach {want} in {timeout} s; last status {body}")

    def wait_operation(self, op_id: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.client.get(f"/api/operations/{op_id}", headers=self.headers)
            assert r.status_code == 200, r.text
            if r.json()["status"] in ("succeeded", "failed"):
                return r.json()
            time.sleep(0.5)
        pytest.fail(f"operation {op_id} did not finish in {timeout} s")


@pytest.fixture
def service(settings: Settings, database_url: str) -> Iterator[Service]:
    """A running service on its own database (SQLite and PostgreSQL); stacks
    share the run's backend."""
    with running_service(settings.with_database(database_url)) as svc:
        yield svc


def add_user_with_key(app: Litestar, name: str = "tester", scopes: Sequence[str] = READ_WRITE) -> str:
    """A user of a started app and an API key of it with `scopes`; answers the key."""
    with context_of(app.state).db.writes() as db, db.begin():
        user = add_user(db, name, password_hash=None)
        key, prefix, digest = new_api_key()
        add_key(db, prefix=prefix, secret_hash=digest, name="tests", user_id=user.id, scopes=list(scopes))
    return key


@contextlib.contextmanager
def running_service(settings: Settings) -> Iterator[Service]:
    """The service on `settings`, with one user and a read/write key."""
    app = build_app(settings)
    with TestClient(app, timeout=120) as client:
        key = add_user_with_key(app)
        yield Service(client=client, settings=settings, headers={"Authorization": f"Bearer {key}"})
