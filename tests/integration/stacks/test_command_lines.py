"""No secret is ever on a command line: while a deployment is created, changed,
previewed, restarted and deleted through the service, every process on the machine
is read from /proc (`toolchain.processes.ProcessSampler`) and none may carry an env
value of the deployment or the kubeconfig's client key in its arguments (any local
user can read every command line). The engine gets them through files only this
process can read, its environment and gRPC."""

from __future__ import annotations

import base64
import secrets

import yaml

from tests.integration.conftest import Service
from toolchain.processes import ProcessSampler


def client_key(service: Service) -> dict[str, str]:
    """The kubeconfig's client key as the file has it (base64) and as a line of its PEM."""
    kubeconfig = service.settings.engine.kubeconfig
    assert kubeconfig is not None
    encoded = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["client-key-data"]
    pem = base64.b64decode(encoded).decode().splitlines()
    return {"client key (base64)": encoded[40:100], "client key (PEM)": pem[2]}


def test_no_secret_on_any_command_line_while_operations_run(service: Service) -> None:
    c, h = service.client, service.headers
    values = [f"s3cret-{i}-{secrets.token_hex(8)}" for i in range(3)]
    watched = {**client_key(service), **{f"env value {i}": v for i, v in enumerate(values)}}
    with ProcessSampler(interval=0.05, secrets=watched) as sampler:
        r = c.post("/api/deployments", json={"template": "nginx", "envVars": {"GREETING": values[0]}}, headers=h)
        assert r.status_code == 201, r.text
        name = r.json()["name"]
        assert service.wait_operation(r.json()["operationId"])["status"] == "succeeded"
        r = c.put("/api/deployments/config", json={"deployment_name": name, "configData": {"GREETING": values[1]}},
                  headers=h)  # fmt: skip
        assert service.wait_operation(r.json()["operationId"])["status"] == "succeeded"
        r = c.post(f"/api/deployments/{name}/preview", json={"configData": {"GREETING": values[2]}}, headers=h)
        assert r.status_code == 200, r.text
        r = c.post("/api/deployments/restart", json={"deployment_name": name}, headers=h)
        assert service.wait_operation(r.json()["operationId"])["status"] == "succeeded"
        r = c.post("/api/deployments/delete", json={"deployment_name": name}, headers=h)
        assert service.wait_operation(r.json()["operationId"])["status"] == "succeeded"
    # The sampler saw the engine at work: each command, and the provider it starts.
    commands = {word for s in sampler.named("pulumi") for word in s.cmdline.split()}
    assert {"up", "preview", "destroy"} <= commands, commands
    assert sampler.named("pulumi-resource-kubernetes")
    assert sampler.leaks == []
