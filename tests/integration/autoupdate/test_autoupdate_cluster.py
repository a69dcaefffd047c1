"""Auto-update end to end: the service (API, runner, real pulumi engine, local
cluster) and a real registry on loopback.

A raw-image deployment of `<registry>/apps/e2e:1.0.0` opts in with policy patch
and strategy recreate through the API; a poll queues `1.0.1@sha256:...`, the
runner applies it, and the Kubernetes Deployment shows the pinned image and the
Recreate strategy; switching to rolling shows RollingUpdate; 2.0.0 is never taken.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from kubernetes import client, config

from api.http.context import context_of
from scheduler.jobs import AutoUpdateScheduler
from stacks.settings import Settings
from tests.integration.conftest import Service, running_service
from toolchain.registry.local import LocalRegistry, binary, crane_push

pytestmark = pytest.mark.skipif(
    binary("registry") is None or binary("crane") is None,
    reason="registry/crane not built: toolchain/build.sh builds them (toolchain/registry/go.mod)",
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("e2e-registry")) as reg:
        yield reg


@pytest.fixture
def service(settings: Settings, database_url: str, registry: LocalRegistry) -> Iterator[Service]:
    """The service, its registry settings allowing this loopback registry: the SSRF
    guard refuses one unless the operator allowlists it."""
    allowed = Settings.from_env(registry.client_env()).registry
    with running_service(msgspec.structs.replace(settings.with_database(database_url), registry=allowed)) as svc:
        yield svc


def apps_api(service: Service) -> client.AppsV1Api:
    return client.AppsV1Api(config.new_client_from_config(config_file=str(service.settings.engine.kubeconfig)))


def scheduler_of(service: Service) -> AutoUpdateScheduler:
    """The service's own scheduler (it leads: nothing else holds the lease here)."""
    return context_of(service.client.app.state).scheduler


def wait_auto_update(service: Service, name: str, kind: str = "auto-update", timeout: float = 300) -> dict:
    """The newest operation of `kind`, once finished (whoever's poll queued it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ops = service.client.get(f"/api/deployments/{name}/operations", headers=service.headers).json()["operations"]
        found = [o for o in ops if o["kind"] == kind]
        if found:
            return service.wait_operation(found[0]["id"], timeout)
        time.sleep(0.5)
    pytest.fail(f"no {kind} operation for {name} within {timeout} s")


def put_auto_update(service: Service, body: dict) -> dict:
    r = service.client.put("/api/deployments/auto-update", json=body, headers=service.headers)
    assert r.status_code == 200, r.text
    op = service.wait_operation(r.json()["operationId"])
    assert op["status"] == "succeeded", op
    return r.json()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_auto_update_rolls_out_the_pinned_image_with_the_strategy(
    service: Service, registry: LocalRegistry, tmp_path: Path
) -> None:
    scratch = tmp_path / "layers"
    digests = {
        tag: crane_push(registry.host, "apps/e2e", tag, f"e2e:{tag}:{time.time_ns()}", scratch)
        for tag in ("1.0.0", "1.0.1", "2.0.0")
    }
    image = f"{registry.host}/apps/e2e:1.0.0"
    r = service.client.post(
        "/api/deployments/deploy-image",
        json={"image": image, "name": "autoe2e", "containerPort": 8080},
        headers=service.headers,
    )
    assert r.status_code == 201, r.text
    service.wait_status("autoe2e", {"Ready"})
    apps = apps_api(service)
    namespace = "sd-autoe2e"
    assert apps.read_namespaced_deployment("app", namespace).spec.strategy.type == "RollingUpdate"

    put_auto_update(service, {"deployment_name": "autoe2e", "enabled": True, "strategy": "recreate", "policy": "patch"})
    dep = apps.read_namespaced_deployment("app", namespace)
    assert dep.spec.strategy.type == "Recreate"
    r = service.client.get("/api/deployments/auto-update?name=autoe2e", headers=service.headers)
    assert r.json() == {
        "enabled": True, "strategy": "recreate", "policy": "patch", "include": None, "exclude": None,
        "intervalSeconds": None, "prerelease": False,
    }  # fmt: skip

    scheduler = scheduler_of(service)
    pinned = f"{registry.host}/apps/e2e:1.0.1@{digests['1.0.1']}"
    scheduler.poll_now(force=True)
    op = wait_auto_update(service, "autoe2e")
    assert op["status"] == "succeeded", op
    # With the runner hook (see scheduler/failures.py) the revision message is the queued one,
    # `auto-update <repo>:1.0.0 -> 1.0.1 (sha256:...)`; without it, describe_change's `image a -> b`.
    assert digests["1.0.1"] in op["message"] and "1.0.1" in op["message"]
    service.wait_status("autoe2e", {"Ready"})
    dep = apps.read_namespaced_deployment("app", namespace)
    assert dep.spec.template.spec.containers[0].image == pinned
    assert dep.spec.strategy.type == "Recreate"

    # Nothing newer within 1.0.x: the next poll queues nothing, and says why not 2.0.0.
    assert scheduler.poll_now(force=True).updates == []
    status = service.client.get("/api/deployments/autoe2e/auto-update/status", headers=service.headers).json()
    assert (status["action"], status["currentTag"], status["currentDigest"]) == ("none", "1.0.1", digests["1.0.1"])
    by_tag = {c["tag"]: c for c in status["candidates"]}
    assert by_tag["2.0.0"]["reason"] == "a major update; policy patch allows 1.0.x"
    assert by_tag["1.0.0"]["code"] == "older"

    put_auto_update(service, {"deployment_name": "autoe2e", "enabled": True, "strategy": "rolling"})
    assert apps.read_namespaced_deployment("app", namespace).spec.strategy.type == "RollingUpdate"
    history = service.client.get("/api/deployments/autoe2e/history", headers=service.headers).json()["revisions"]
    messages = [rev["message"] for rev in history]
    assert any("auto-update enabled (recreate, patch)" in m or "strategy rolling -> recreate" in m for m in messages)
    assert any(pinned in m or "1.0.1" in m for m in messages), messages


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_rollout_that_never_becomes_ready_is_rolled_back_and_never_retried(
    settings: Settings, database_url: str, registry: LocalRegistry, tmp_path: Path
) -> None:
    """1.0.0 runs; the registry gets 1.0.1-rc.never-ready, whose pods kwok never
    makes Ready. The update's rollout times out, the runner's hook records the
    digest and rolls back to the last good revision, and no poll retries it."""
    scratch = tmp_path / "layers"
    bad_tag = "1.0.1-rc.never-ready"
    digests = {
        tag: crane_push(registry.host, "apps/bad", tag, f"bad:{tag}:{time.time_ns()}", scratch)
        for tag in ("1.0.0", bad_tag)
    }
    good = f"{registry.host}/apps/bad:1.0.0@{digests['1.0.0']}"
    quick = settings.with_database(database_url)
    quick = msgspec.structs.replace(
        quick,
        engine=msgspec.structs.replace(quick.engine, rollout_timeout_s=30),
        registry=Settings.from_env(registry.client_env()).registry,
    )
    with running_service(quick) as service:
        r = service.client.post(
            "/api/deployments/deploy-image", json={"image": good, "name": "autobad", "containerPort": 8080},
            headers=service.headers,
        )  # fmt: skip
        assert r.status_code == 201, r.text
        service.wait_status("autobad", {"Ready"})
        put_auto_update(service, {"deployment_name": "autobad", "enabled": True, "policy": "patch", "prerelease": True})

        scheduler = scheduler_of(service)
        scheduler.poll_now(force=True)
        failed = wait_auto_update(service, "autobad")
        assert failed["status"] == "failed", failed
        assert digests[bad_tag] in failed["message"] and failed["error"], failed
        rollback = wait_auto_update(service, "autobad", kind="rollback")
        assert rollback["status"] == "succeeded", rollback
        service.wait_status("autobad", {"Ready"})
        image = apps_api(service).read_namespaced_deployment("app", "sd-autobad").spec.template.spec.containers[0].image
        assert image == good
        status = service.client.get("/api/deployments/autobad/auto-update/status", headers=service.headers).json()
        assert [b["digest"] for b in status["badDigests"]] == [digests[bad_tag]]
        # Never again: the next poll rejects the digest and queues nothing.
        assert scheduler.poll_now(force=True).updates == []
        status = service.client.get("/api/deployments/autobad/auto-update/status", headers=service.headers).json()
        assert {c["tag"]: c["code"] for c in status["candidates"]}[bad_tag] == "bad-digest"
        history = service.client.get("/api/deployments/autobad/history", headers=service.headers).json()["revisions"]
        assert history[0]["message"].startswith("rollback to revision")
        assert any(r["result"] == "failed" for r in history)
