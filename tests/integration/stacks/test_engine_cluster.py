"""The real parts, end to end, with no shipstack service in between: an inline
Automation API program deploys nginx into the local cluster through the real
pulumi engine and Kubernetes provider, rolls it to another image, is visible
to the ordinary pulumi CLI from the repository root, and is destroyed."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time

from kubernetes import client, config

from programs.deployment import program_from_config
from programs.spec import DeploymentSpec, spec_to_config
from stacks import workspace
from stacks.settings import REPO_ROOT, Settings
from tests.waiting import wait_until

STACK = "it-nginx"


def k8s(settings: Settings) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(settings.engine.kubeconfig))


def set_spec(stack, spec: DeploymentSpec, settings: Settings) -> None:
    values = {k: _cv(v, secret) for k, (v, secret) in spec_to_config(spec).items()}
    values["shipstack:kubeconfig"] = _cv(settings.engine.kubeconfig.read_text(), True)
    values["pulumi:disable-default-providers"] = _cv('["kubernetes"]', False)
    stack.set_all_config(values, path=False)


def _cv(value: str, secret: bool):
    from pulumi import automation as auto

    return auto.ConfigValue(value=value, secret=secret)


def cli(settings: Settings, *args: str) -> str:
    env = {**os.environ, **workspace.engine_env(settings.engine)}
    out = subprocess.run(["pulumi", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def pods(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """Running pods of the namespace, name -> image."""
    items = client.CoreV1Api(api).list_namespaced_pod(namespace).items
    return {
        p.metadata.name: p.spec.containers[0].image
        for p in items
        if p.metadata.deletion_timestamp is None and p.status.phase == "Running"
    }


def test_nginx_up_roll_inspect_destroy(settings: Settings) -> None:
    spec = DeploymentSpec(
        name=STACK,
        template="nginx",
        image="nginx:1.27",
        base_domain=settings.service.base_domain,
        env={"GREETING": "hi"},
    )
    stack = workspace.stack(settings, STACK, program_from_config)
    set_spec(stack, spec, settings)
    namespace = f"sd-{STACK}"
    api = k8s(settings)
    apps = client.AppsV1Api(api)

    # 1. Deploy: the provider's own await passes only once the Deployment is Available.
    started = time.monotonic()
    result = stack.up(on_output=lambda _line: None)
    first_up_s = time.monotonic() - started
    assert result.summary.result == "succeeded"
    dep = apps.read_namespaced_deployment("nginx", namespace)
    assert dep.status.available_replicas == 1
    assert any(c.type == "Available" and c.status == "True" for c in dep.status.conditions)
    ingress = client.NetworkingV1Api(api).read_namespaced_ingress("nginx", namespace)
    assert ingress.status.load_balancer.ingress[0].ip == "127.0.0.1"
    assert ingress.spec.rules[0].host == f"{STACK}.{settings.service.base_domain}"
    assert client.CoreV1Api(api).read_namespaced_service("nginx", namespace).spec.ports[0].port == 80
    before = pods(api, namespace)
    assert list(before.values()) == ["nginx:1.27"]
    ingresses = result.outputs["ingresses"].value
    assert ingresses[0]["url"] == f"https://{STACK}.{settings.service.base_domain}"

    # 2. Another image tag rolls the pods: new pod names, the new image.
    set_spec(stack, msgspec_replace(spec, image="nginx:1.26"), settings)
    result = stack.up(on_output=lambda _line: None)
    assert result.summary.result == "succeeded"
    assert result.summary.resource_changes.get("update", 0) >= 1
    after = wait_until(
        "the pods on nginx:1.26", lambda: (p := pods(api, namespace)) and set(p.values()) == {"nginx:1.26"} and p, 60, 1
    )
    assert not set(after) & set(before)

    # 3. The ordinary CLI, from the repository root, sees the stack and both updates.
    stacks = json.loads(cli(settings, "stack", "ls", "--json"))
    assert STACK in {s["name"] for s in stacks}
    history = json.loads(cli(settings, "stack", "history", "-s", STACK, "--json"))
    assert [h["kind"] for h in history][:2] == ["update", "update"]
    assert all(h["result"] == "succeeded" for h in history)
    exported = json.loads(cli(settings, "stack", "export", "-s", STACK))
    types = {r["type"] for r in exported["deployment"]["resources"]}
    assert {"kubernetes:apps/v1:Deployment", "kubernetes:networking.k8s.io/v1:Ingress"} <= types

    # 4. Destroy removes every object, the namespace included.
    result = stack.destroy(on_output=lambda _line: None)
    assert result.summary.result == "succeeded"
    names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    assert namespace not in names
    stack.workspace.remove_stack(STACK)
    print(f"\nfirst up {first_up_s:.1f} s")


def msgspec_replace(spec: DeploymentSpec, **changes) -> DeploymentSpec:
    import msgspec

    return msgspec.structs.replace(spec, **changes)


def test_objects_left_by_a_killed_create_are_adopted(settings: Settings) -> None:
    """An `up` killed mid-create leaves objects the state does not know. The
    re-run applies them under a new field manager; shipstack owns its
    namespaces, so it forces ownership instead of failing with a conflict."""
    name = "it-adopt"
    namespace = f"sd-{name}"
    api = k8s(settings)
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "nginx-env"}, "stringData": {"GREETING": "left-behind"}}
    )
    spec = DeploymentSpec(name=name, template="nginx", base_domain=settings.service.base_domain, env={"GREETING": "hi"})
    stack = workspace.stack(settings, name, program_from_config)
    set_spec(stack, spec, settings)
    result = stack.up(on_output=lambda _line: None)
    assert result.summary.result == "succeeded"
    data = core.read_namespaced_secret("nginx-env", namespace).data
    assert base64.b64decode(data["GREETING"]).decode() == "hi"
    assert stack.destroy(on_output=lambda _line: None).summary.result == "succeeded"
    stack.workspace.remove_stack(name)
