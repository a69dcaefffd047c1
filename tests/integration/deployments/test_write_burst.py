"""Writes that pile up on one deployment compose into one update: a burst of 20
config writes costs far fewer than 20 Pulumi updates (revisions), ends with the last
write's config in force and in the cluster, and every write's operation names the
update that applied it (`result.appliedBy`)."""

from __future__ import annotations

import base64

from kubernetes import client, config
from sqlalchemy import select

from api.http.context import context_of
from persistence.models import Deployment, Revision
from tests.integration.conftest import Service

BURST = 20


def revisions(service: Service, name: str) -> list[dict]:
    r = service.client.get(f"/api/deployments/{name}/history", headers=service.headers)
    assert r.status_code == 200, r.text
    return r.json()["revisions"]


def test_a_burst_of_config_writes_is_applied_by_a_few_updates(service: Service) -> None:
    c, h = service.client, service.headers
    r = c.post("/api/deployments", json={"template": "nginx", "envVars": {"N": "0"}}, headers=h)
    name = r.json()["name"]
    assert service.wait_status(name, {"Ready", "Error"})["status"] == "Ready"
    before = len(revisions(service, name))

    ids = []
    for i in range(1, BURST + 1):
        r = c.put("/api/deployments/config", json={"deployment_name": name, "configData": {"N": str(i)}}, headers=h)
        assert r.status_code == 200, r.text
        ids.append(r.json()["operationId"])
    done = [service.wait_operation(op) for op in ids]

    assert [op["status"] for op in done] == ["succeeded"] * BURST
    updates = len(revisions(service, name)) - before
    assert 1 <= updates <= 5, f"{BURST} writes cost {updates} updates"
    applied_by = [op["result"]["appliedBy"] for op in done]
    # In order: each update applied a run of consecutive writes, led by the first of them.
    assert applied_by == sorted(applied_by, key=ids.index) and set(applied_by) <= set(ids)
    assert len(set(applied_by)) == updates
    for leader in set(applied_by):
        assert ids.index(leader) == applied_by.index(leader)
    with context_of(c.app.state).db.reads() as db:
        row_id = db.scalar(select(Deployment.id).where(Deployment.name == name))
        recorded = set(db.scalars(select(Revision.operation_id).where(Revision.deployment_id == row_id)))
    assert set(applied_by) <= recorded  # each names a revision's update

    assert c.get(f"/api/deployments/config?name={name}", headers=h).json() == {"configData": {"N": str(BURST)}}
    api = config.new_client_from_config(config_file=str(service.settings.engine.kubeconfig))
    secrets = client.CoreV1Api(api).list_namespaced_secret(f"sd-{name}").items
    env = {k: base64.b64decode(v).decode() for s in secrets for k, v in (s.data or {}).items()}
    assert env.get("N") == str(BURST), env
    c.post("/api/deployments/delete", json={"deployment_name": name}, headers=h)
    service.wait_status(name, {"Gone"})
