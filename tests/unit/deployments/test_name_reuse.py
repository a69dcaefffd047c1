"""Identity by row, not by name: a deployment deleted by one user and created again
under the same name by another leaves the newcomer none of its records. Operations
(`operations.deployment_id`), the auto-update scheduler's last decision and bad
digests (keyed by the deployment row's id), the drift record and the metric samples
all belong to the old row; the new owner sees a deployment with one operation (its
own create), default auto-update settings, no check ever made and no history.

The app runs no workers (`run_operations=False`); the worker's part is played with
the persistence functions it uses, and the delete by the runner's own executor with
the one call that needs a cluster, `engine.destroy`, replaced by a fake.
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.http.context import context_of
from persistence import drift as drift_store
from persistence import metrics as metric_store
from persistence import operations as ops
from persistence.base import utcnow
from persistence.models import Deployment
from scheduler import store
from stacks import engine
from stacks.execute import Executor
from tests.fake_cluster import FakeKube
from tests.held import held
from tests.seed import Seed, bearer

NAME = "shop"


def work_off(client: TestClient[Litestar], token: str) -> list[str]:
    """What a worker does with every queued operation but a delete: claims it under
    `token` and records it as succeeded (no engine runs). Returns their ids."""
    writes = context_of(client.app.state).db.writes
    done: list[str] = []
    with writes() as s, s.begin():
        while batch := ops.claim_next(s, "fake-worker", token):
            for op in batch:
                assert ops.finish(s, op.id, token, ok=True, message=f"{op.kind} done", result={"changed": True})
                done.append(op.id)
            s.flush()
    return done


def fake_destroy(settings: Any, name: str, current: str | None, on_event: Any = None) -> None:
    """`engine.destroy` without a cluster: the stack had nothing left to remove."""


def run_delete(client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's executor carries out the queued delete (its row goes, queued
    writes fail), with a fake in place of the Pulumi destroy."""
    monkeypatch.setattr(engine, "destroy", fake_destroy)
    context = context_of(client.app.state)
    writes = context.db.writes
    with writes() as s, s.begin():
        batch = ops.claim_next(s, "fake-worker", "delete-token")
    assert [op.kind for op in batch] == ["delete"]
    Executor(context.settings, writes, lambda op_id, item: None, None, worker_id="w1").run(
        batch, "delete-token", held(batch)
    )


def record_old_state(sessions: sessionmaker[Session], row_id: int, op_id: str) -> None:
    """What the scheduler and the sampler recorded for the first deployment."""
    now = utcnow()
    with sessions() as s, s.begin():
        store.save_status(
            s,
            store.DeploymentStatus(
                deployment_name=NAME, repository="registry.example/shop", image="registry.example/shop:1.0",
                checked_at=now, action="update", reason="1.1 is newer", operation_id=op_id,
                baseline_digest="sha256:" + "a" * 64, baseline_tag="1.0",
            ),
        )  # fmt: skip
        store.add_bad_digest(s, NAME, "sha256:" + "b" * 64, "the rollout of 1.1 failed", "registry.example/shop:1.1")
        drift_store.record_check(
            s, row_id, at=now, operation_id=op_id,
            objects=[{"kind": "Deployment", "name": "nginx", "change": "modified", "fields": ["spec.replicas"]}],
        )  # fmt: skip
        sample = metric_store.Sample(
            deployment_id=row_id, service="nginx", at=now, cpu_millicores=5.0, memory_bytes=1 << 20, pods=1,
            restarts=0,
        )  # fmt: skip
        assert metric_store.add_samples(s, [sample]) == 1


def row_of(sessions: sessionmaker[Session]) -> Deployment:
    with sessions() as s:
        row = s.query(Deployment).filter_by(name=NAME).one()
        s.expunge(row)
        return row


def test_a_name_deleted_and_taken_again_leaves_the_newcomer_none_of_the_old_records(
    client: TestClient[Litestar], seed: Seed, db_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = FakeKube()  # the metrics route asks the cluster for the current usage
    context_of(client.app.state).kube = kube
    alice = bearer(seed.key(seed.user("alice")))
    bob = bearer(seed.key(seed.user("bob")))

    # Alice's deployment lives a while: created, configured, auto-update settings queued.
    created = client.post("/api/deployments", json={"template": "nginx", "name": NAME}, headers=alice)
    assert created.status_code == 201, created.text
    work_off(client, "t1")
    config = {"deployment_name": NAME, "configData": {"GREETING": "hello"}}
    assert client.put("/api/deployments/config", json=config, headers=alice).status_code == 200
    work_off(client, "t2")
    auto = {"deployment_name": NAME, "enabled": True, "policy": "minor"}
    queued_settings = client.put("/api/deployments/auto-update", json=auto, headers=alice)
    assert queued_settings.status_code == 200, queued_settings.text
    assert client.get(f"/api/deployments/auto-update?name={NAME}", headers=alice).json()["enabled"] is True
    work_off(client, "t3")
    old_row = row_of(db_factory)
    record_old_state(db_factory, old_row.id, created.json()["operationId"])

    # Alice sees all of it, so the assertions on Bob's view below are not vacuous.
    old_ops = client.get(f"/api/deployments/{NAME}/operations", headers=alice).json()["operations"]
    assert len(old_ops) == 3
    old_status = client.get(f"/api/deployments/{NAME}/auto-update/status", headers=alice).json()
    assert old_status["checkedAt"] is not None and len(old_status["badDigests"]) == 1
    assert client.get(f"/api/deployments/{NAME}/drift", headers=alice).json()["drift"]["drifted"] is True
    old_metrics = client.get(f"/api/deployments/{NAME}/metrics?window=1h", headers=alice).json()
    assert old_metrics["series"] != []

    # Alice deletes it; the worker carries the delete out and the row is gone.
    deleted = client.post("/api/deployments/delete", json={"deployment_name": NAME}, headers=alice)
    assert deleted.status_code == 200, deleted.text
    run_delete(client, monkeypatch)
    assert client.get(f"/api/deployments/status?name={NAME}", headers=alice).status_code == 404
    old_ids = [op["id"] for op in old_ops] + [deleted.json()["operationId"]]

    # Bob takes the name.
    again = client.post("/api/deployments", json={"template": "nginx", "name": NAME}, headers=bob)
    assert again.status_code == 201, again.text
    new_row = row_of(db_factory)

    # Operations: only Bob's own create; none of Alice's, not even by id.
    listed = client.get(f"/api/deployments/{NAME}/operations", headers=bob)
    assert listed.status_code == 200
    assert [op["id"] for op in listed.json()["operations"]] == [again.json()["operationId"]], (
        f"old row id {old_row.id}, new row id {new_row.id}"
    )
    for op_id in old_ids:
        assert client.get(f"/api/operations/{op_id}", headers=bob).status_code == 404
        assert client.get(f"/api/operations/{op_id}/events", headers=bob).status_code == 404
        # Alice still reads what was hers: operations outlive their deployment row.
        assert client.get(f"/api/operations/{op_id}", headers=alice).status_code == 200

    # Auto-update: default settings, never checked, no digest refused.
    settings = client.get(f"/api/deployments/auto-update?name={NAME}", headers=bob).json()
    assert settings["enabled"] is False and settings["policy"] != "minor"
    status = client.get(f"/api/deployments/{NAME}/auto-update/status", headers=bob)
    assert status.status_code == 200
    body = status.json()
    leaked = {k: body[k] for k in ("checkedAt", "action", "reason", "image", "operationId") if body.get(k) is not None}
    assert leaked == {}, f"the old deployment's auto-update state shows through: {leaked}"
    assert body["badDigests"] == [] and body["candidates"] == [] and body.get("repository") is None

    # Drift: never checked.
    drift = client.get(f"/api/deployments/{NAME}/drift", headers=bob).json()["drift"]
    assert drift["checkedAt"] is None and drift["drifted"] is None and drift["objects"] == []
    assert drift["operationId"] is None

    # Metrics over time: no samples, no markers.
    metrics = client.get(f"/api/deployments/{NAME}/metrics?window=24h", headers=bob)
    assert metrics.status_code == 200, metrics.text
    assert metrics.json()["series"] == [] and metrics.json()["markers"] == []

    # And the newcomer is told about the old one in no other way either.
    assert client.get(f"/api/deployments/config?name={NAME}", headers=bob).json() == {"configData": {}}
