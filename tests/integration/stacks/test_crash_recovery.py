"""`kill -9` of the service in the middle of an `up`: the next start finishes
the interrupted operation, and leaves no stack locked and no pending
operations in the state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from stacks import workspace
from stacks.settings import REPO_ROOT, Settings
from tests.integration.processes import free_port, seed_database, start_service, stop_service, wait_http


def test_kill_9_mid_up_is_finished_on_next_start(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "svc"
    db_url = f"sqlite:///{data / 'shipstack.db'}"
    data.mkdir()
    key = seed_database(db_url, "crash")
    env = {
        **os.environ,
        "SHIPSTACK_DATA": str(data),
        "SHIPSTACK_DATABASE_URL": db_url,
        "KUBECONFIG": str(settings.engine.kubeconfig),
        "PULUMI_BACKEND_URL": settings.engine.backend_url,
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    log = tmp_path / "service.log"

    proc = start_service(env, port, log)
    try:
        wait_http(f"{base}/api/health")
        r = httpx.post(f"{base}/api/deployments", json={"template": "nginx", "name": "it-crash"}, headers=headers)
        assert r.status_code == 201, r.text
        op_id = r.json()["operationId"]
        # Wait until the engine is creating resources, then kill the whole process group.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            op = httpx.get(f"{base}/api/operations/{op_id}", headers=headers).json()
            if any(e.get("type") == "step" and e.get("op") == "create" for e in op.get("progress", [])):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the create never started")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    proc = start_service(env, port, log)
    try:
        wait_http(f"{base}/api/health")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            op = httpx.get(f"{base}/api/operations/{op_id}", headers=headers).json()
            if op["status"] in ("succeeded", "failed"):
                break
            time.sleep(1)
        assert op["status"] == "succeeded", (op, log.read_text()[-3000:])
        status = httpx.get(f"{base}/api/deployments/status?name=it-crash", headers=headers).json()
        assert status["status"] == "Ready"

        backend = Path(settings.engine.backend_url.removeprefix("file://"))
        locks = backend / ".pulumi" / "locks" / "organization" / "shipstack" / "it-crash"
        assert not list(locks.glob("*.json")) if locks.exists() else True
        run_env = {**os.environ, **workspace.engine_env(settings.engine)}
        exported = subprocess.run(
            ["pulumi", "stack", "export", "-s", "it-crash"], cwd=REPO_ROOT, env=run_env,
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert not json.loads(exported)["deployment"].get("pending_operations")

        r = httpx.post(f"{base}/api/deployments/delete", json={"deployment_name": "it-crash"}, headers=headers)
        assert r.status_code == 200
        deadline = time.monotonic() + 180
        while httpx.get(f"{base}/api/deployments/status?name=it-crash", headers=headers).status_code != 404:
            assert time.monotonic() < deadline, "delete did not finish"
            time.sleep(1)
    finally:
        stop_service(proc)
