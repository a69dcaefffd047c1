"""The drift routes on the HTTP service without workers (operations stay queued):
checks and reconciles are queued operations, settings changes compose and are
validated, the last check shows in the drift, status and list answers, and every
status the routes document is reachable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.auth.principal import READ
from api.http.context import context_of
from persistence import drift as store
from persistence.base import utcnow
from stacks.settings import Settings
from tests.seed import MakeClient, Seed, bearer

SCALED = {"kind": "Deployment", "name": "nginx", "change": "modified", "fields": ["spec.replicas"], "unmanaged": []}
GONE = {"kind": "Service", "name": "nginx", "change": "deleted"}


class World:
    def __init__(self, client: TestClient[Litestar]) -> None:
        self.client = client
        self.seed = Seed(context_of(client.app.state).db.reads)
        self.alice = self.seed.user("alice")
        self.bob = self.seed.user("bob")
        self.web = self.seed.deployment("web", self.alice, status="Ready")
        self.h = bearer(self.seed.key(self.alice))
        self.read_only = bearer(self.seed.key(self.alice, (READ,)))
        self.bob_h = bearer(self.seed.key(self.bob))

    def record(self, objects: list[dict[str, Any]] | None, error: str | None = None) -> None:
        with context_of(self.client.app.state).db.writes() as db, db.begin():
            store.record_check(db, self.web.id, at=utcnow(), operation_id="op-check", objects=objects, error=error)

    def operation(self, op_id: str) -> dict[str, Any]:
        r = self.client.get(f"/api/operations/{op_id}", headers=self.h)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def make_world(make_settings: Callable[..., Settings], make_client: MakeClient) -> Callable[..., World]:
    return lambda **env: World(make_client(make_settings(**env)))


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


def test_a_check_and_a_reconcile_are_queued_operations(world: World) -> None:
    r = world.client.post("/api/deployments/web/drift-check", headers=world.h)
    assert r.status_code == 200, r.text
    check = r.json()
    assert check["name"] == "web" and check["message"] == "drift check"
    assert world.operation(check["operationId"])["kind"] == "drift-check"
    assert world.operation(check["operationId"])["status"] == "queued"
    # A second one while the first still waits to start is the first.
    again = world.client.post("/api/deployments/web/drift-check", headers=world.h).json()
    assert again["operationId"] == check["operationId"] and again["message"] == "already queued"

    r = world.client.post("/api/deployments/web/reconcile", headers=world.h)
    assert r.status_code == 200, r.text
    assert world.operation(r.json()["operationId"])["kind"] == "reconcile"
    listed = world.client.get("/api/deployments/web/operations", headers=world.h).json()["operations"]
    assert sorted(o["kind"] for o in listed) == ["drift-check", "reconcile"]


def test_before_any_check(world: World) -> None:
    body = world.client.get("/api/deployments/web/drift", headers=world.h).json()
    assert body["settings"] == {"policy": "report", "intervalSeconds": None}
    assert body["effectiveIntervalSeconds"] == 3600
    assert body["drift"] == {
        "checkedAt": None, "drifted": None, "objects": [], "error": None, "operationId": None,
        "reconcileOperationId": None,
    }  # fmt: skip
    created = datetime.fromisoformat(world.web.created_at.isoformat())
    assert datetime.fromisoformat(body["nextCheckAt"]) == created + timedelta(seconds=3600)
    status = world.client.get("/api/deployments/status?name=web", headers=world.h).json()
    assert status["drift"]["checkedAt"] is None and status["drift"]["drifted"] is None


def test_the_last_check_shows_in_drift_status_and_list(world: World) -> None:
    world.record([SCALED, GONE])
    expected = [
        {"kind": "Deployment", "name": "nginx", "change": "modified", "fields": ["spec.replicas"]},
        {"kind": "Service", "name": "nginx", "change": "deleted"},
    ]
    drift = world.client.get("/api/deployments/web/drift", headers=world.h).json()["drift"]
    assert drift["drifted"] is True and drift["objects"] == expected and drift["operationId"] == "op-check"
    assert drift["checkedAt"] is not None
    status = world.client.get("/api/deployments/status?name=web", headers=world.h).json()
    assert status["drift"] == drift
    (item,) = world.client.get("/api/deployments", headers=world.h).json()
    assert item["drift"] == drift

    world.record([])
    assert world.client.get("/api/deployments/status?name=web", headers=world.h).json()["drift"]["drifted"] is False
    world.record(None, error="the cluster could not be reached")
    failed = world.client.get("/api/deployments/web/drift", headers=world.h).json()["drift"]
    assert failed["drifted"] is None and failed["error"] == "the cluster could not be reached"


def test_settings_changes_are_queued_and_compose(world: World) -> None:
    r = world.client.put("/api/deployments/web/drift", json={"policy": "reconcile"}, headers=world.h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["settings"] == {"policy": "reconcile", "intervalSeconds": None}
    op = world.operation(body["operationId"])
    assert op["kind"] == "drift-settings" and op["message"] == "drift policy reconcile, the service's interval"
    # The second PUT starts from the first, still queued.
    r = world.client.put("/api/deployments/web/drift", json={"intervalSeconds": 600}, headers=world.h)
    assert r.json()["settings"] == {"policy": "reconcile", "intervalSeconds": 600}
    shown = world.client.get("/api/deployments/web/drift", headers=world.h).json()
    assert shown["settings"] == {"policy": "reconcile", "intervalSeconds": 600}
    assert shown["effectiveIntervalSeconds"] == 600
    r = world.client.put("/api/deployments/web/drift", json={"intervalSeconds": 0}, headers=world.h)
    assert r.json()["message"] == "drift policy reconcile, never on a schedule"
    shown = world.client.get("/api/deployments/web/drift", headers=world.h).json()
    assert shown["effectiveIntervalSeconds"] == 0 and shown["nextCheckAt"] is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "give policy"),
        ({"policy": "fix"}, "policy must be one of report, reconcile"),
        ({"intervalSeconds": 5}, "drift interval must be 0"),
        ({"interval": 600}, "Invalid"),
    ],
)
def test_bad_settings_are_400(world: World, body: dict[str, Any], error: str) -> None:
    r = world.client.put("/api/deployments/web/drift", json=body, headers=world.h)
    assert r.status_code == 400, r.text
    assert error in r.json()["error"]


def test_the_service_can_turn_scheduled_checks_off(make_world: Callable[..., World]) -> None:
    world = make_world(SHIPSTACK_DRIFT_INTERVAL="0")
    world.client.put("/api/deployments/web/drift", json={"intervalSeconds": 600}, headers=world.h)
    shown = world.client.get("/api/deployments/web/drift", headers=world.h).json()
    assert shown["effectiveIntervalSeconds"] == 0 and shown["nextCheckAt"] is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/deployments/{name}/drift-check"),
        ("POST", "/api/deployments/{name}/reconcile"),
        ("PUT", "/api/deployments/{name}/drift"),
        ("GET", "/api/deployments/{name}/drift"),
    ],
)
def test_errors(world: World, method: str, path: str) -> None:
    def call(name: str, headers: dict[str, str]) -> int:
        body = {"policy": "report"} if method == "PUT" else None
        return world.client.request(method, path.format(name=name), json=body, headers=headers).status_code

    assert call("nope", world.h) == 404
    assert call("web", world.bob_h) == 404  # another tenant's deployment is not there at all
    assert call("web", {}) == 401
    if method != "GET":
        assert call("web", world.read_only) == 403
        with context_of(world.client.app.state).db.writes() as db, db.begin():
            db.get(type(world.web), world.web.id).status = "Deleting"  # type: ignore[union-attr]
        assert call("web", world.h) == 409
