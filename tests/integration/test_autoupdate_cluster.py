"""Auto-update end to end: the service (API, runner, real pulumi engine, local
cluster) and a real registry on loopback.

A raw-image deployment of `<registry>/apps/e2e:1.0.0` opts in with policy patch
and strategy recreate through the API; a poll queues `1.0.1@sha256:...`, the
runner applies it, and the Kubernetes Deployment shows the pinned image and the
Recreate strategy; switching to rolling shows RollingUpdate; 2.0.0 is never taken.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from api.autoupdate import ROUTES as AUTO_UPDATE_ROUTES
from scheduler.jobs import AutoUpdateScheduler, SchedulerSettings
from stacks import engine
from stacks.runner import Runner
from tests.integration.conftest import Service
from toolchain.registry.local import LocalRegistry, binary, crane_push

pytestmark = pytest.mark.skipif(
    binary("registry") is None or binary("crane") is None,
    reason="registry/crane not built: toolchain/build.sh builds them (toolchain/registry/go.mod)",
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("e2e-registry")) as reg:
        yield reg


def apps_api(service: Service) -> client.AppsV1Api:
    return client.AppsV1Api(config.new_client_from_config(config_file=str(service.settings.kubeconfig)))


def ensure_routes(service: Service) -> None:
    """Until api/service.py registers the auto-update routes itself."""
    app = service.client.app
    registered = {route.path for route in app.routes}
    for handler in AUTO_UPDATE_ROUTES:
        if not set(handler.paths) & registered:
            app.register(handler)


def scheduler_of(service: Service) -> tuple[AutoUpdateScheduler, bool]:
    """The service's own scheduler once api/service.py starts one; else one for the test."""
    app = service.client.app
    existing = getattr(app.state, "auto_update", None)
    if existing is not None:
        return existing, False
    config = SchedulerSettings(poll_interval_s=300)
    return AutoUpdateScheduler(service.settings, app.state.engine, config=config, holder="e2e"), True


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


@pytest.mark.parametrize("service", ["sqlite"], indirect=True)
def test_auto_update_rolls_out_the_pinned_image_with_the_strategy(
    service: Service, registry: LocalRegistry, tmp_path: Path
) -> None:
    ensure_routes(service)
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

    scheduler, own = scheduler_of(service)
    pinned = f"{registry.host}/apps/e2e:1.0.1@{digests['1.0.1']}"
    try:
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
    finally:
        if own:
            scheduler.stop()

    put_auto_update(service, {"deployment_name": "autoe2e", "enabled": True, "strategy": "rolling"})
    assert apps.read_namespaced_deployment("app", namespace).spec.strategy.type == "RollingUpdate"
    history = service.client.get("/api/deployments/autoe2e/history", headers=service.headers).json()["revisions"]
    messages = [rev["message"] for rev in history]
    assert any("auto-update enabled (recreate, patch)" in m or "strategy rolling -> recreate" in m for m in messages)
    assert any(pinned in m or "1.0.1" in m for m in messages), messages


@pytest.mark.skipif(
    "on_failed" not in inspect.signature(Runner.__init__).parameters,
    reason="the runner has no failure hook yet (wire scheduler.failures.RollbackOnFailure, see its docstring)",
)
@pytest.mark.parametrize("service", ["sqlite"], indirect=True)
def test_a_failed_rollout_is_rolled_back_and_never_retried(
    service: Service, registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The update to 1.0.2 fails in the engine (as when its pods never become Available);
    the runner's hook records the digest and rolls back to the last good revision."""
    ensure_routes(service)
    scratch = tmp_path / "layers"
    digests = {
        tag: crane_push(registry.host, "apps/bad", tag, f"bad:{tag}:{time.time_ns()}", scratch)
        for tag in ("1.0.1", "1.0.2")
    }
    good = f"{registry.host}/apps/bad:1.0.1@{digests['1.0.1']}"
    r = service.client.post(
        "/api/deployments/deploy-image", json={"image": good, "name": "autobad", "containerPort": 8080},
        headers=service.headers,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    service.wait_status("autobad", {"Ready"})
    put_auto_update(service, {"deployment_name": "autobad", "enabled": True, "policy": "patch"})

    real_apply = engine.apply

    def failing_apply(settings, spec, message, on_event=None):  # type: ignore[no-untyped-def]
        # The update goes out, then its wait for Available gives up (as pulumi-kubernetes
        # does when the new pods never become Ready).
        result = real_apply(settings, spec, message, on_event)
        if spec.image and digests["1.0.2"] in spec.image:
            raise engine.EngineError("deployment app did not become Available within 600 s")
        return result

    monkeypatch.setattr(engine, "apply", failing_apply)
    scheduler, own = scheduler_of(service)
    try:
        scheduler.poll_now(force=True)
        failed = wait_auto_update(service, "autobad")
        assert failed["status"] == "failed"
        rollback = wait_auto_update(service, "autobad", kind="rollback")
        assert rollback["status"] == "succeeded", rollback
        service.wait_status("autobad", {"Ready"})
        image = apps_api(service).read_namespaced_deployment("app", "sd-autobad").spec.template.spec.containers[0].image
        assert image == good
        status = service.client.get("/api/deployments/autobad/auto-update/status", headers=service.headers).json()
        assert [b["digest"] for b in status["badDigests"]] == [digests["1.0.2"]]
        # Never again: the next poll rejects 1.0.2's digest and queues nothing.
        assert scheduler.poll_now(force=True).updates == []
        status = service.client.get("/api/deployments/autobad/auto-update/status", headers=service.headers).json()
        assert {c["tag"]: c["code"] for c in status["candidates"]}["1.0.2"] == "bad-digest"
    finally:
        if own:
            scheduler.stop()
