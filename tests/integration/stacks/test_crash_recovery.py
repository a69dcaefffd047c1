"""`kill -9` of the service (SQLite, the file backend) while pulumi runs an `up`, first a
create, then a config change (its config rendered, the update under way): each time
the next start finishes the interrupted operation, applies it rather than answering
"no change" (the config of record changes only when an update succeeds), and leaves no
stack locked, no pending operations in the state, and the deployment Ready with what
its last write asked for in the cluster."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from kubernetes import client, config

from stacks import workspace
from stacks.settings import REPO_ROOT, Settings
from tests.integration.processes import free_port, seed_database, start_service, stop_service, wait_http

NAME = "it-crash"


class Service:
    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        data = tmp_path / "svc"
        data.mkdir()
        db_url = f"sqlite:///{data / 'shipstack.db'}"
        self.headers = {"Authorization": f"Bearer {seed_database(db_url, 'crash')}"}
        self.env = {**os.environ, "SHIPSTACK_DATA": str(data), "SHIPSTACK_DATABASE_URL": db_url,
                    "KUBECONFIG": str(settings.engine.kubeconfig),
                    "PULUMI_BACKEND_URL": settings.engine.backend_url}  # fmt: skip
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "service.log"
        self.locks = Path(settings.engine.backend_url.removeprefix("file://")) / ".pulumi" / "locks"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = start_service(self.env, self.port, self.log)
        wait_http(f"{self.base}/api/health")

    def kill_while_pulumi_holds_the_stack(self, op_id: str) -> None:
        """Waits for pulumi's lock on the stack (the config is rendered, `up` runs), then
        kills the service's whole process group."""
        assert self.proc is not None
        deadline = time.monotonic() + 120
        while not list(self.locks.glob(f"organization/shipstack/{NAME}/*.json")):
            assert time.monotonic() < deadline, f"the update never started: {self.operation(op_id)}"
            time.sleep(0.05)
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        assert list(self.locks.glob(f"organization/shipstack/{NAME}/*.json")), "the update ended before the kill"

    def operation(self, op_id: str) -> dict:
        return httpx.get(f"{self.base}/api/operations/{op_id}", headers=self.headers).json()

    def finished(self, op_id: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while (op := self.operation(op_id))["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, f"{op_id} did not finish"
            time.sleep(1)
        return op

    def write(self, method: str, path: str, body: dict) -> str:
        r = httpx.request(method, f"{self.base}{path}", json=body, headers=self.headers)
        assert r.status_code in (200, 201), r.text
        return r.json()["operationId"]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", headers=self.headers)


def _secret_env(settings: Settings) -> dict[str, str]:
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(settings.engine.kubeconfig)))
    (secret,) = [s for s in core.list_namespaced_secret(f"sd-{NAME}").items if s.metadata.name.endswith("-env")]
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def _assert_clean(svc: Service, settings: Settings) -> None:
    assert svc.get(f"/api/deployments/status?name={NAME}").json()["status"] == "Ready"
    assert not list(svc.locks.glob(f"organization/shipstack/{NAME}/*.json"))
    run_env = {**os.environ, **workspace.engine_env(settings.engine)}
    exported = subprocess.run(["pulumi", "stack", "export", "-s", NAME], cwd=REPO_ROOT, env=run_env,
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert not json.loads(exported)["deployment"].get("pending_operations")


def test_kill_9_mid_up_is_finished_on_next_start(settings: Settings, tmp_path: Path) -> None:
    svc = Service(settings, tmp_path)
    svc.start()
    try:
        created = svc.write("POST", "/api/deployments", {"template": "nginx", "name": NAME})
        svc.kill_while_pulumi_holds_the_stack(created)
        svc.start()
        op = svc.finished(created)
        assert op["status"] == "succeeded", (op, svc.log.read_text()[-3000:])
        _assert_clean(svc, settings)

        change = {"deployment_name": NAME, "configData": {"ROUND": "1"}}
        changed = svc.write("PUT", "/api/deployments/config", change)
        svc.kill_while_pulumi_holds_the_stack(changed)
        svc.start()
        op = svc.finished(changed)
        assert op["status"] == "succeeded", (op, svc.log.read_text()[-3000:])
        assert not op["message"].startswith("no change"), op
        assert svc.get(f"/api/deployments/config?name={NAME}").json()["configData"] == {"ROUND": "1"}
        assert _secret_env(settings) == {"ROUND": "1"}
        _assert_clean(svc, settings)

        deleted = svc.write("POST", "/api/deployments/delete", {"deployment_name": NAME})
        svc.finished(deleted, timeout=180)
        if svc.get(f"/api/deployments/status?name={NAME}").status_code != 404:
            pytest.fail("the deployment is still there after its delete")
    finally:
        if svc.proc is not None:
            stop_service(svc.proc)
