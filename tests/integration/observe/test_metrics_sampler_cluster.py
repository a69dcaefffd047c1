"""Metrics over time on the local cluster: the real service's scheduler samples a
Ready nginx deployment through the real metrics-server (kwok's simulated usage: 15m
CPU, 32Mi memory per container) every few seconds, and
`GET /api/deployments/{name}/metrics?window=1h` serves the samples with the
deployment's create marked; deleting the deployment deletes its samples.

metrics-server has a pod's usage some 30-60 s after it starts, so the test waits for
samples with a deadline. The database is SQLite here; the sampler's queries run on
both databases in tests/unit/scheduler/test_metrics_sampler.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select

from api.http.context import context_of
from persistence.metrics import MetricSample
from persistence.models import Deployment
from stacks.settings import Settings
from tests.integration.conftest import Service, running_service

INTERVAL_S = 3.0
SAMPLES_DEADLINE_S = 240


@pytest.fixture
def sampling_service(settings: Settings, tmp_path: Path) -> Iterator[Service]:
    fast = msgspec.structs.replace(settings.scheduler, metrics_interval_s=INTERVAL_S)
    sampled = msgspec.structs.replace(settings, scheduler=fast).with_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with running_service(sampled) as svc:
        yield svc


def _window(service: Service, name: str) -> dict[str, Any]:
    r = service.client.get(f"/api/deployments/{name}/metrics?window=1h", headers=service.headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_ready_deployment_gets_samples_from_metrics_server(sampling_service: Service) -> None:
    service, c, h = sampling_service, sampling_service.client, sampling_service.headers
    context = context_of(c.app.state)
    r = c.post("/api/deployments", json={"template": "nginx"}, headers=h)
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    assert service.wait_status(name, {"Ready", "Error"})["status"] == "Ready"

    body: dict[str, Any] = {}
    deadline = time.monotonic() + SAMPLES_DEADLINE_S
    while time.monotonic() < deadline:
        body = _window(service, name)
        if body["series"] and len(body["series"][0]["points"]) >= 3:
            break
        time.sleep(INTERVAL_S)
    else:
        pytest.fail(f"no samples of {name} within {SAMPLES_DEADLINE_S} s; last answer {body}, "
                    f"last sample run {context.scheduler.last_sample if context.scheduler else None}")  # fmt: skip

    report = context.scheduler.last_sample if context.scheduler else None
    assert report is not None and report.metrics_api, report
    [nginx] = body["series"]
    assert nginx["service"] == "nginx"
    points = nginx["points"]
    # What metrics-server serves for kwok's simulated container: 15m CPU (a rate of its
    # CPU counter: 15.001 and the like), 32Mi memory.
    assert all(p["cpuMillicores"] == pytest.approx(15, abs=0.5) for p in points), points
    assert {p["memoryBytes"] for p in points} == {32 * 2**20}, points
    assert not any(p.get("gapBefore") for p in points), points  # one sample every few seconds
    assert body["intervalSeconds"] == INTERVAL_S
    assert body["cpuUsage"] == "15m" and body["memoryUsage"] == "32Mi"  # the current values, as before
    revisions = [m for m in body["markers"] if m["kind"] == "revision"]
    assert [m["label"] for m in revisions] == ["create nginx"], body["markers"]
    assert revisions[0]["time"] <= points[0]["time"]  # measured only once Ready
    print(f"metrics history: {len(points)} points, first {points[0]}, markers {body['markers']}")

    with context.db.reads() as db:
        dep_id = db.scalar(select(Deployment.id).where(Deployment.name == name))
    r = c.post("/api/deployments/delete", json={"deployment_name": name}, headers=h)
    assert r.status_code == 200, r.text
    assert service.wait_status(name, {"Gone"}) == {"status": "Gone"}
    with context.db.reads() as db:
        left = db.scalar(select(func.count()).select_from(MetricSample).where(MetricSample.deployment_id == dep_id))
    assert left == 0
