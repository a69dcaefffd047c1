"""`GET /api/deployments/{name}/metrics?window=` on the real service (SQLite and
PostgreSQL) with stored samples and operations, the current values from a fake
cluster (`FakeKube` of test_streams_fake_cluster.py): the contract's fields stay as
they are, the window adds series and markers, a bad window is a 400, a deployment
re-created under an old name has no history, and OpenAPI documents it all."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from api.http.app import build_app
from api.http.context import context_of
from persistence import metrics as store
from persistence import revisions
from persistence.base import utcnow
from persistence.metrics import Sample
from persistence.models import Deployment, User
from stacks.settings import Settings
from tests.seed import Seed, bearer
from tests.unit.observe.test_streams_fake_cluster import FakeKube

CURRENT = {"cpuUsage", "memoryUsage", "timestamp", "cpuMillicores", "memoryBytes", "pods"}
MI = 2**20


class World(msgspec.Struct):
    client: TestClient[Litestar]
    kube: FakeKube
    sessions: sessionmaker[Session]
    owner: User
    headers: dict[str, str]


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    settings = Settings.from_env(
        {
            "SHIPSTACK_DATA": str(tmp_path / "data"),
            "SHIPSTACK_DATABASE_URL": database_url,
            "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
            "SHIPSTACK_METRICS_INTERVAL": "60",
        }
    )
    app = build_app(settings, run_operations=False)
    kube = FakeKube()
    with TestClient(app) as client:
        context_of(app.state).kube = kube
        sessions: sessionmaker[Session] = context_of(app.state).db.writes
        seed = Seed(sessions)
        owner = seed.user("owner")
        kube.add_pod("web-a", 0)
        kube.metrics = [
            {
                "metadata": {"name": "web-a"},
                "timestamp": "2026-03-04T10:00:00Z",
                "containers": [{"name": "nginx", "usage": {"cpu": "15m", "memory": "32Mi"}}],
            }
        ]
        yield World(client=client, kube=kube, sessions=sessions, owner=owner, headers=bearer(seed.key(owner)))


def ready(world: World, name: str, age: timedelta = timedelta(days=2)) -> Deployment:
    """A Ready nginx deployment created `age` ago."""
    with world.sessions() as s, s.begin():
        row = Deployment(name=name, owner_user_id=world.owner.id, template="nginx", status="Ready",
                         created_at=utcnow() - age)  # fmt: skip
        s.add(row)
    return row


def store_minutes(world: World, row: Deployment, minutes: range, restarts_from: int | None = None) -> None:
    """A sample a minute, `minutes` ago; the restart count goes 0 -> 2 at `restarts_from` minutes ago."""
    now = utcnow()
    samples = [
        Sample(deployment_id=row.id, service="nginx", at=now - timedelta(minutes=m), cpu_millicores=15.0 + m % 3,
               memory_bytes=32 * MI, pods=1,
               restarts=2 if restarts_from is not None and m <= restarts_from else 0)
        for m in minutes
    ]  # fmt: skip
    with world.sessions() as s, s.begin():
        assert store.add_samples(s, samples) == len(samples)


def operation(world: World, row: Deployment, kind: str, message: str, ago: timedelta, *, changed: bool) -> None:
    """An operation's outcome as the runner records it: a revision when it changed something."""
    if not changed:
        return  # "no change": no Pulumi update, no revision
    with world.sessions() as s, s.begin():
        revision = revisions.record(
            s, row.id, result="succeeded", message=message, config="", resource_changes={},
            operation_id=None, started_at=utcnow() - ago,
        )  # fmt: skip
        revision.finished_at = utcnow() - ago


def test_without_a_window_the_answer_is_the_contracts(world: World) -> None:
    row = ready(world, "web1")
    store_minutes(world, row, range(0, 30))
    r = world.client.get("/api/deployments/web1/metrics", headers=world.headers)
    assert r.status_code == 200, r.text
    assert set(r.json()) == CURRENT
    assert r.json()["cpuUsage"] == "15m" and r.json()["memoryUsage"] == "32Mi"


def test_a_window_adds_series_and_markers(world: World) -> None:
    row = ready(world, "web1")
    store_minutes(world, row, range(0, 90), restarts_from=20)  # 90 minutes; a restart 20 minutes ago
    operation(world, row, "config", "config update: GREETING changed", timedelta(minutes=40), changed=True)
    operation(world, row, "config", "no change: the spec already matches", timedelta(minutes=30), changed=False)
    operation(world, row, "restart", "restart", timedelta(minutes=70), changed=True)  # before the 1h window
    r = world.client.get("/api/deployments/web1/metrics?window=1h", headers=world.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("cpuUsage", "memoryUsage", "cpuMillicores", "memoryBytes", "pods")} == {
        "cpuUsage": "15m", "memoryUsage": "32Mi", "cpuMillicores": 15, "memoryBytes": 32 * MI, "pods": 1,
    }  # fmt: skip
    assert body["window"] == "1h" and body["intervalSeconds"] == 60
    assert [s["service"] for s in body["series"]] == ["nginx"]
    points = body["series"][0]["points"]
    assert 59 <= len(points) <= 61  # a point a minute over the last hour
    assert set(points[0]) == {"time", "cpuMillicores", "memoryBytes"}
    assert points[0]["time"] >= body["windowStart"] and points[-1]["time"] <= body["windowEnd"]
    assert [p["time"] for p in points] == sorted(p["time"] for p in points)
    assert {p["memoryBytes"] for p in points} == {32 * MI}
    assert [(m["kind"], m["label"]) for m in body["markers"]] == [
        ("revision", "config update: GREETING changed"),
        ("restart", "2 restarts of nginx"),
    ]
    restart = body["markers"][1]
    assert restart["service"] == "nginx" and restart["count"] == 2

    six = world.client.get("/api/deployments/web1/metrics?window=6h", headers=world.headers).json()
    assert len(six["series"][0]["points"]) == 90
    assert six["markers"][0]["label"] == "restart"  # the 70-minute-old restart operation is within 6 h


@pytest.mark.parametrize("window", ["2h", "1H", "", "24h%20", "week"])
def test_a_bad_window_is_a_400_that_names_the_choices(world: World, window: str) -> None:
    ready(world, "web1")
    r = world.client.get(f"/api/deployments/web1/metrics?window={window}", headers=world.headers)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error", "code"} and r.json()["code"] == "bad_window"
    assert "1h, 6h, 24h" in r.json()["error"]


def test_a_window_on_other_peoples_or_missing_deployments_is_a_404(world: World) -> None:
    r = world.client.get("/api/deployments/nope/metrics?window=1h", headers=world.headers)
    assert r.status_code == 404 and set(r.json()) == {"error", "code"}


def test_a_recreated_name_has_no_old_history(world: World) -> None:
    old = ready(world, "web1")
    store_minutes(world, old, range(0, 50), restarts_from=10)
    operation(world, old, "config", "config update: old", timedelta(minutes=20), changed=True)
    with world.sessions() as s, s.begin():
        s.execute(delete(Deployment).where(Deployment.id == old.id))
    ready(world, "web1", age=timedelta(minutes=5))
    body = world.client.get("/api/deployments/web1/metrics?window=1h", headers=world.headers).json()
    assert body["series"] == [] and body["markers"] == []
    assert set(CURRENT) <= set(body)


def test_a_cluster_without_metrics_api_is_503_with_a_window_too(world: World) -> None:
    from api.observe.kube_models import KubeNotFound

    ready(world, "web1")
    world.kube.metrics = KubeNotFound(404, "NotFound", "the server could not find the requested resource")
    r = world.client.get("/api/deployments/web1/metrics?window=1h", headers=world.headers)
    assert r.status_code == 503 and r.json()["code"] == "metrics_unavailable"


def test_openapi_documents_the_window_and_every_status(world: World) -> None:
    doc: dict[str, Any] = world.client.get("/api/openapi.json").json()
    route = doc["paths"]["/api/deployments/{name}/metrics"]["get"]
    window = next(p for p in route["parameters"] if p["name"] == "window")
    assert window["in"] == "query" and not window.get("required", False)
    assert "1h, 6h or 24h" in window["description"]
    assert {"200", "400", "401", "403", "404", "429", "503"} <= set(route["responses"])
    assert "bad_window" in route["responses"]["400"]["description"]
    schema = doc["components"]["schemas"]["MetricsResponse"]
    assert {"window", "series", "markers"} <= set(schema["properties"])
    assert set(schema["required"]) == CURRENT
