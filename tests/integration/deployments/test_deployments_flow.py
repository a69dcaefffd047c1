"""A deployment's whole life through the REST API, against the real engine,
provider and cluster: create, Ready with ingresses, config update, a no-op
write, restart, history, preview, rollback, delete."""

from __future__ import annotations

import json
import os
import re
import subprocess

from kubernetes import client, config

from stacks import workspace
from stacks.settings import REPO_ROOT
from tests.integration.conftest import Service


def kube(service: Service) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(service.settings.engine.kubeconfig))


def pod_names(api: client.ApiClient, namespace: str) -> set[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace).items
    return {p.metadata.name for p in pods if p.metadata.deletion_timestamp is None and p.status.phase == "Running"}


def cli_history(service: Service, name: str) -> list[dict]:
    env = {**os.environ, **workspace.engine_env(service.settings.engine)}
    out = subprocess.run(
        ["pulumi", "stack", "history", "-s", name, "--json"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_template_deployment_lifecycle(service: Service) -> None:
    c, h = service.client, service.headers
    r = c.post("/api/deployments", json={"template": "nginx", "envVars": {"GREETING": "hello"}}, headers=h)
    assert r.status_code == 201, r.text
    created = r.json()
    name = created["name"]
    assert re.fullmatch(r"[a-z][a-z0-9]{9}", name)
    assert created["status"] == "Pending" and created["template"] == "nginx" and created["visibility"] == "public"

    status = service.wait_status(name, {"Ready", "Error"})
    assert status["status"] == "Ready", status
    assert status["deploymentReady"] is True and status["allowDelete"] is True
    host = f"{name}.{service.settings.service.base_domain}"
    assert status["ingresses"] == [{"id": "nginx", "name": "nginx", "host": host, "url": f"https://{host}"}]
    listed = {d["name"]: d for d in c.get("/api/deployments", headers=h).json()}
    assert listed[name]["status"] == "Ready" and listed[name]["canDelete"] is True

    api = kube(service)
    namespace = f"sd-{name}"
    dep = client.AppsV1Api(api).read_namespaced_deployment("nginx", namespace)
    assert dep.status.available_replicas == 1
    assert c.get(f"/api/deployments/config?name={name}", headers=h).json() == {"configData": {"GREETING": "hello"}}
    pods_v1 = pod_names(api, namespace)

    # Config update: replaces all env vars and rolls the pods.
    new_env = {"GREETING": "bye", "DEBUG": "1"}
    r = c.put("/api/deployments/config", json={"deployment_name": name, "configData": new_env}, headers=h)
    assert r.status_code == 200, r.text
    op = service.wait_operation(r.json()["operationId"])
    assert op["status"] == "succeeded", op
    assert c.get(f"/api/deployments/config?name={name}", headers=h).json()["configData"] == new_env
    pods_v2 = pod_names(api, namespace)
    assert pods_v2 and not pods_v2 & pods_v1

    # The same config again starts no Pulumi update.
    r = c.put("/api/deployments/config", json={"deployment_name": name, "configData": new_env}, headers=h)
    op = service.wait_operation(r.json()["operationId"])
    assert op["status"] == "succeeded" and op["result"] == {"changed": False}

    # Restart: a stamp in the pod template rolls the pods.
    r = c.post("/api/deployments/restart", json={"deployment_name": name}, headers=h)
    assert r.status_code == 200
    assert service.wait_operation(r.json()["operationId"])["status"] == "succeeded"
    dep = client.AppsV1Api(api).read_namespaced_deployment("nginx", namespace)
    assert "kubectl.kubernetes.io/restartedAt" in dep.spec.template.metadata.annotations
    assert not pod_names(api, namespace) & pods_v2

    history = c.get(f"/api/deployments/{name}/history", headers=h).json()["revisions"]
    assert [r["version"] for r in history] == [3, 2, 1]
    assert history[2]["message"].startswith("create")
    assert "DEBUG" in history[1]["message"] and "bye" not in history[1]["message"]
    assert history[0]["message"] == "restart"
    # Each revision's spec in the API's words: env keys, never values.
    assert history[1]["spec"]["envKeys"] == ["DEBUG", "GREETING"] and "bye" not in json.dumps(history)
    assert history[2]["spec"] == {
        "template": "nginx", "visibility": "public", "replicas": 1, "strategy": "rolling", "envKeys": ["GREETING"],
        "autoUpdate": {
            "enabled": False, "strategy": "rolling", "policy": "digest", "include": None, "exclude": None,
            "intervalSeconds": None, "prerelease": False,
        },
    }  # fmt: skip
    assert history[0]["spec"]["restartedAt"]
    assert all(r["result"] == "succeeded" and r["kind"] == "update" for r in history)
    assert len(cli_history(service, name)) == 3

    # Preview: the exact diff, and nothing changes.
    r = c.post(f"/api/deployments/{name}/preview", json={"configData": {"GREETING": "preview"}}, headers=h)
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["podsWillRoll"] is True, preview
    assert {s["type"] for s in preview["steps"]} >= {"kubernetes:core/v1:Secret", "kubernetes:apps/v1:Deployment"}
    assert len(c.get(f"/api/deployments/{name}/history", headers=h).json()["revisions"]) == 3
    assert c.get(f"/api/deployments/config?name={name}", headers=h).json()["configData"]["GREETING"] == "bye"

    # Rollback to revision 1: its exact config, as a new revision.
    r = c.post(f"/api/deployments/{name}/rollback", json={"version": 1}, headers=h)
    assert service.wait_operation(r.json()["operationId"])["status"] == "succeeded"
    assert c.get(f"/api/deployments/config?name={name}", headers=h).json() == {"configData": {"GREETING": "hello"}}
    history = c.get(f"/api/deployments/{name}/history", headers=h).json()["revisions"]
    assert history[0]["version"] == 4 and history[0]["message"].startswith("rollback to revision 1")

    # Delete: the stack, the namespace and the row go.
    r = c.post("/api/deployments/delete", json={"deployment_name": name}, headers=h)
    assert r.status_code == 200 and r.json()["success"] is True
    assert service.wait_status(name, {"Gone"}) == {"status": "Gone"}
    assert namespace not in {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    assert name not in {d["name"] for d in c.get("/api/deployments", headers=h).json()}


def test_internal_image_deployment_has_no_ingress(service: Service) -> None:
    c, h = service.client, service.headers
    r = c.post(
        "/api/deployments/deploy-image",
        json={"image": "nginx:1.27", "name": "it-internal", "containerPort": 80, "visibility": "internal"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    status = service.wait_status("it-internal", {"Ready", "Error"})
    assert status["status"] == "Ready", status
    assert "ingresses" not in status or status["ingresses"] == []
    api = kube(service)
    assert client.NetworkingV1Api(api).list_namespaced_ingress("sd-it-internal").items == []
    svc = client.CoreV1Api(api).read_namespaced_service("app", "sd-it-internal")
    assert svc.spec.ports[0].target_port in (80, "http")
    r = c.post("/api/deployments/delete", json={"deployment_name": "it-internal"}, headers=h)
    assert service.wait_status("it-internal", {"Gone"}) == {"status": "Gone"}


def test_webapp_with_its_database_on_a_volume(service: Service) -> None:
    """The multi-service template: a public app and a private postgres whose
    generated password lands in both, on a claim the cluster provisions."""
    c, h = service.client, service.headers
    r = c.post("/api/deployments", json={"template": "webapp", "name": "it-webapp"}, headers=h)
    assert r.status_code == 201, r.text
    status = service.wait_status("it-webapp", {"Ready", "Error"})
    assert status["status"] == "Ready", status
    host = f"it-webapp.{service.settings.service.base_domain}"
    assert [i["host"] for i in status["ingresses"]] == [host]
    api = kube(service)
    ns = "sd-it-webapp"
    assert {d.metadata.name for d in client.AppsV1Api(api).list_namespaced_deployment(ns).items} == {"app", "db"}
    (claim,) = client.CoreV1Api(api).list_namespaced_persistent_volume_claim(ns).items
    assert claim.status.phase == "Bound"
    password = c.get("/api/deployments/config?name=it-webapp", headers=h).json()["configData"]["POSTGRES_PASSWORD"]
    assert len(password) >= 16
    history = c.get("/api/deployments/it-webapp/history", headers=h).json()["revisions"]
    assert password not in json.dumps(history)
    r = c.post("/api/deployments/delete", json={"deployment_name": "it-webapp"}, headers=h)
    assert service.wait_status("it-webapp", {"Gone"}) == {"status": "Gone"}


def test_stacks_run_in_parallel_and_one_operation_per_stack(service: Service) -> None:
    """Three creates overlap in time; writes queued behind a create run after it, and
    the deltas waiting together are applied together, in order, by one update."""
    c, h = service.client, service.headers
    names = [f"it-par-{i}" for i in range(3)]
    creates = [c.post("/api/deployments", json={"template": "nginx", "name": n}, headers=h).json() for n in names]
    # Queued behind the first create: they must wait for it and for each other.
    config = c.put("/api/deployments/config", json={"deployment_name": names[0], "configData": {"A": "1"}}, headers=h)
    restart = c.post("/api/deployments/restart", json={"deployment_name": names[0]}, headers=h)
    assert config.status_code == 200 and restart.status_code == 200
    ops = [service.wait_operation(op["operationId"]) for op in creates]
    assert all(op["status"] == "succeeded" for op in ops), ops
    assert max(op["startedAt"] for op in ops) < min(op["finishedAt"] for op in ops), "creates did not overlap"
    waited = [
        service.wait_operation(config.json()["operationId"]),
        service.wait_operation(restart.json()["operationId"]),
    ]
    assert all(op["status"] == "succeeded" for op in waited), waited
    assert all(ops[0]["finishedAt"] <= op["startedAt"] for op in waited)
    # One update applied both, the config first: its message lists them in order.
    assert {op["result"]["appliedBy"] for op in waited} == {waited[0]["id"]}
    assert [op["message"] for op in waited] == ["config: env keys added A", "restart"]
    history = c.get(f"/api/deployments/{names[0]}/history", headers=h).json()["revisions"]
    assert [r["message"] for r in history] == ["2 changes: config: env keys added A; restart", "create nginx"]
    for n in names:
        c.post("/api/deployments/delete", json={"deployment_name": n}, headers=h)
    for n in names:
        assert service.wait_status(n, {"Gone"}) == {"status": "Gone"}


def test_a_rollout_that_never_becomes_ready_ends_in_error(settings, tmp_path) -> None:
    """kwok keeps pods of "never-ready" images un-Ready: the provider's await
    gives up after the rollout timeout and the deployment says why."""
    import msgspec

    from tests.integration.conftest import running_service

    quick = settings.with_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    quick = msgspec.structs.replace(quick, engine=msgspec.structs.replace(quick.engine, rollout_timeout_s=20))
    with running_service(quick) as svc:
        r = svc.client.post(
            "/api/deployments/deploy-image",
            json={"image": "registry.example/never-ready:1.0", "name": "it-never", "containerPort": 80},
            headers=svc.headers,
        )
        assert r.status_code == 201, r.text
        status = svc.wait_status("it-never", {"Ready", "Error"}, timeout=180)
        assert status["status"] == "Error" and status["allowRequest"] is True
        assert "it-never" in status["statusMessage"] or "app" in status["statusMessage"]
        listed = {d["name"]: d for d in svc.client.get("/api/deployments", headers=svc.headers).json()}
        assert listed["it-never"]["lastError"] == status["statusMessage"]
        svc.client.post("/api/deployments/delete", json={"deployment_name": "it-never"}, headers=svc.headers)
        assert svc.wait_status("it-never", {"Gone"}) == {"status": "Gone"}
