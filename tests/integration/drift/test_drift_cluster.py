"""Drift detection against the real engine, provider and cluster, through the REST
API: objects edited or deleted with the Kubernetes client behind the service's back
are reported (object and field, never a value) and reconcile puts them back as a
revision; an untouched deployment reports nothing, check after check; the policy
"reconcile" does it by itself; a scheduled check leaves a busy deployment alone; a
check that fails says so without marking the deployment in error."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from kubernetes import client, config
from sqlalchemy import select

from api.http.context import context_of
from persistence.base import utcnow
from persistence.models import Deployment, User
from scheduler.drift import BUSY
from tests.integration.conftest import Service

ORIGINAL = "hello-drift-original-value"
TAMPERED = "s3cr3t-tampered-value"
LEAKS = (ORIGINAL, TAMPERED, base64.b64encode(ORIGINAL.encode()).decode(), base64.b64encode(TAMPERED.encode()).decode())


class Cluster:
    def __init__(self, service: Service, name: str) -> None:
        api = config.new_client_from_config(config_file=str(service.settings.engine.kubeconfig))
        self.apps, self.core = client.AppsV1Api(api), client.CoreV1Api(api)
        self.ns = f"sd-{name}"

    def replicas(self) -> int:
        return self.apps.read_namespaced_deployment("nginx", self.ns).spec.replicas

    def greeting(self) -> str:
        return base64.b64decode(self.core.read_namespaced_secret("nginx-env", self.ns).data["GREETING"]).decode()

    def service_exists(self) -> bool:
        return any(s.metadata.name == "nginx" for s in self.core.list_namespaced_service(self.ns).items)


class Api:
    """The REST calls of these tests; every answer is kept to look for leaked values."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.texts: list[str] = []

    def call(self, method: str, path: str, want: int = 200, **kw: Any) -> Any:
        r = self.service.client.request(method, path, headers=self.service.headers, **kw)
        assert r.status_code == want, r.text
        self.texts.append(r.text)
        return r.json()

    def create(self, env: dict[str, str] | None = None) -> str:
        name = self.call("POST", "/api/deployments", 201, json={"template": "nginx", "envVars": env or {}})["name"]
        assert self.service.wait_status(name, {"Ready", "Error"})["status"] == "Ready"
        return name

    def run(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """A write, waited for; its operation as the API shows it (progress included)."""
        op = self.service.wait_operation(self.call(method, path, **kw)["operationId"])
        self.texts.append(str(op))
        assert op["status"] == "succeeded", op
        return op

    def check(self, name: str) -> dict[str, Any]:
        self.run("POST", f"/api/deployments/{name}/drift-check")
        return self.call("GET", f"/api/deployments/{name}/drift")["drift"]


def by_object(drift: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["name"]): o for o in drift["objects"]}


def wait_for(what: str, ok: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen in {timeout} s")
        time.sleep(0.5)


def test_edits_behind_the_services_back_are_reported_and_reconciled(service: Service) -> None:
    api = Api(service)
    name = api.create({"GREETING": ORIGINAL})
    cluster = Cluster(service, name)
    clean = api.check(name)
    assert clean["drifted"] is False and clean["objects"] == [] and clean["checkedAt"] is not None

    cluster.apps.patch_namespaced_deployment_scale("nginx", cluster.ns, {"spec": {"replicas": 3}})
    cluster.core.delete_namespaced_service("nginx", cluster.ns)
    tampered = base64.b64encode(TAMPERED.encode()).decode()
    cluster.core.patch_namespaced_secret("nginx-env", cluster.ns, {"data": {"GREETING": tampered}})
    cluster.apps.patch_namespaced_deployment("nginx", cluster.ns, {"metadata": {"labels": {"team": "ops"}}})

    found = api.check(name)
    assert found["drifted"] is True
    objects = by_object(found)
    assert set(objects) == {("Deployment", "nginx"), ("Service", "nginx"), ("Secret", "nginx-env")}
    assert objects["Service", "nginx"]["change"] == "deleted"
    deployment = objects["Deployment", "nginx"]
    assert deployment["change"] == "modified"
    assert deployment["fields"] == ["metadata.labels.team", "spec.replicas"]
    assert deployment["unmanagedFields"] == ["metadata.labels.team"]  # not shipstack's: reconcile keeps it
    assert objects["Secret", "nginx-env"] == {
        "kind": "Secret", "name": "nginx-env", "change": "modified", "fields": ["data.GREETING"],
    }  # fmt: skip
    status = api.call("GET", f"/api/deployments/status?name={name}")
    assert status["status"] == "Ready" and status["drift"] == found  # a check changes nothing else
    (listed,) = [d for d in api.call("GET", "/api/deployments") if d["name"] == name]
    assert listed["drift"] == found

    op = api.run("POST", f"/api/deployments/{name}/reconcile")
    assert op["kind"] == "reconcile" and op["message"].startswith("reconcile: Deployment nginx (")
    assert op["result"]["changed"] is True and op["result"]["drifted"] is False
    assert cluster.replicas() == 1 and cluster.service_exists() and cluster.greeting() == ORIGINAL
    assert cluster.apps.read_namespaced_deployment("nginx", cluster.ns).metadata.labels["team"] == "ops"
    newest = api.call("GET", f"/api/deployments/{name}/history")["revisions"][0]
    assert newest["message"] == op["message"] and newest["result"] == "succeeded"
    after = api.call("GET", f"/api/deployments/{name}/drift")["drift"]
    assert after["drifted"] is False and after["operationId"] == op["id"]
    assert api.check(name)["drifted"] is False
    assert api.call("GET", f"/api/deployments/status?name={name}")["status"] == "Ready"
    for text in api.texts:
        assert not any(value in text for value in LEAKS), text[:300]


def test_an_untouched_deployment_reports_no_drift_check_after_check(service: Service) -> None:
    api = Api(service)
    name = api.create({"GREETING": "hi"})
    api.run(
        "POST", "/api/deployments/restart", json={"deployment_name": name}
    )  # a rollout: a new ReplicaSet, revision 2
    for n in range(3):
        drift = api.check(name)
        assert drift["drifted"] is False and drift["objects"] == [], (n, drift)
        time.sleep(3)  # controllers, kwok and the log writer keep touching the objects meanwhile


def test_policy_reconcile_undoes_drift_after_a_check(service: Service) -> None:
    api = Api(service)
    name = api.create()
    cluster = Cluster(service, name)
    op = api.run("PUT", f"/api/deployments/{name}/drift", json={"policy": "reconcile"})
    assert op["kind"] == "drift-settings"
    assert api.call("GET", f"/api/deployments/{name}/drift")["settings"]["policy"] == "reconcile"

    cluster.apps.patch_namespaced_deployment_scale("nginx", cluster.ns, {"spec": {"replicas": 4}})
    check = api.run("POST", f"/api/deployments/{name}/drift-check")
    assert check["result"]["drifted"] is True and check["message"].endswith("reconcile queued")
    reconcile = service.wait_operation(check["result"]["reconcileOperationId"])
    assert reconcile["status"] == "succeeded" and reconcile["kind"] == "reconcile", reconcile
    assert reconcile["message"] == "reconcile: Deployment nginx (spec.replicas)"
    assert cluster.replicas() == 1
    assert api.call("GET", f"/api/deployments/{name}/drift")["drift"]["drifted"] is False


def test_a_scheduled_check_skips_a_deployment_with_an_operation_running(service: Service) -> None:
    api = Api(service)
    busy, idle = api.create(), api.create()
    scheduler = context_of(service.client.app.state).scheduler
    assert scheduler is not None
    # Two hours on: every deployment is due (the default interval is an hour).
    scheduler.drift.clock = lambda: utcnow() + timedelta(hours=2)

    restart = api.call("POST", "/api/deployments/restart", json={"deployment_name": busy})["operationId"]
    wait_for("the restart to start", lambda: api.call("GET", f"/api/operations/{restart}")["status"] != "queued")
    tick = scheduler.drift_now()
    assert api.call("GET", f"/api/operations/{restart}")["status"] == "running"  # still: the tick saw it busy
    assert tick.skipped.get(busy) == BUSY and busy not in tick.queued
    shown = api.call("GET", f"/api/deployments/{busy}/drift")
    assert shown["skipReason"] == BUSY and shown["skippedAt"] is not None

    assert service.wait_operation(restart)["status"] == "succeeded"
    checks: dict[str, list[dict[str, Any]]] = {}

    def both_checked() -> bool:
        scheduler.drift_now()  # as the scheduled job does every few seconds
        for name in (busy, idle):
            ops = api.call("GET", f"/api/deployments/{name}/operations")["operations"]
            checks[name] = [o for o in ops if o["kind"] == "drift-check" and o["status"] == "succeeded"]
        return all(checks.values())

    wait_for("a scheduled check of both deployments", both_checked)
    ran = api.call("GET", f"/api/operations/{restart}")
    for check in checks[busy]:  # never beside the restart
        start, end = datetime.fromisoformat(check["startedAt"]), datetime.fromisoformat(check["finishedAt"])
        assert start >= datetime.fromisoformat(ran["finishedAt"]) or end <= datetime.fromisoformat(ran["startedAt"])
    assert checks[busy][0]["message"] == "drift check: no drift"
    shown = api.call("GET", f"/api/deployments/{busy}/drift")
    assert shown["skipReason"] is None and shown["drift"]["drifted"] is False


def test_a_failed_check_is_recorded_and_leaves_the_deployment_as_it_was(service: Service) -> None:
    api = Api(service)
    with context_of(service.client.app.state).db.writes() as db, db.begin():
        owner = db.scalar(select(User.id).where(User.name == "tester"))
        db.add(Deployment(name="no-stack", owner_user_id=owner, template="nginx", status="Ready"))
    op_id = api.call("POST", "/api/deployments/no-stack/drift-check")["operationId"]
    op = service.wait_operation(op_id)
    assert op["status"] == "failed" and "has no stack yet" in op["error"]
    shown = api.call("GET", "/api/deployments/no-stack/drift")["drift"]
    assert shown["drifted"] is None and "has no stack yet" in shown["error"] and shown["operationId"] == op_id
    status = api.call("GET", "/api/deployments/status?name=no-stack")
    assert status["status"] == "Ready" and status["drift"] == shown
