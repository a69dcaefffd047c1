"""A fleet of shipstack service processes as if on separate hosts: each `python -m api
serve` on a free port with its own data folder, all sharing one PostgreSQL database for
the service and one for Pulumi's state (the postgres:// backend), a passphrase of
their own and the test cluster. The test talks to each over HTTP, as a load balancer
would, and reads the shared database to see who ran what."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from stacks import workspace
from stacks.settings import REPO_ROOT, Settings
from tests.integration.processes import free_port, process_group, start_service, stop_service, wait_http

PASSPHRASE = "scaleout-test-passphrase-not-the-default"
FINISHED = ("succeeded", "failed")


class Host:
    def __init__(self, name: str, data: Path, log: Path) -> None:
        self.name, self.data, self.log = name, data, log
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Fleet:
    def __init__(self, root: Path, env: dict[str, str], key: str, db: Engine, state_db: Engine) -> None:
        self.root, self.env, self.db, self.state_db = root, env, db, state_db
        self.headers = {"Authorization": f"Bearer {key}"}
        self.hosts: list[Host] = []

    # --- processes -----------------------------------------------------------------

    def start(self, name: str) -> Host:
        host = Host(name, self.root / name, self.root / f"{name}.log")
        host.data.mkdir()
        host.proc = start_service({**self.env, "SHIPSTACK_DATA": str(host.data)}, host.port, host.log)
        self.hosts.append(host)
        return host

    def wait_up(self) -> None:
        for host in self.live():
            wait_http(f"{host.url}/api/health")

    def live(self) -> list[Host]:
        return [h for h in self.hosts if h.alive]

    def kill(self, host: Host) -> None:
        """`kill -9` of the host's service and everything it started."""
        assert host.proc is not None
        os.killpg(host.proc.pid, signal.SIGKILL)
        host.proc.wait(10)

    def stop_all(self) -> None:
        for host in self.hosts:
            if host.proc is not None:
                stop_service(host.proc)

    def logs(self) -> str:
        return "\n".join(f"--- {h.name}\n{h.log.read_text()[-3000:]}" for h in self.hosts if h.log.exists())

    # --- the API -------------------------------------------------------------------

    def call(self, host: Host, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{host.url}{path}", headers=self.headers, timeout=90, **kwargs)

    def write(self, host: Host, method: str, path: str, body: dict[str, Any]) -> str:
        r = self.call(host, method, path, json=body)
        assert r.status_code in (200, 201, 202), r.text
        return r.json()["operationId"]

    def operation(self, op_id: str) -> dict[str, Any]:
        r = self.call(self.live()[0], "GET", f"/api/operations/{op_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_operations(self, op_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        done: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            for op_id in op_ids:
                if op_id not in done and (op := self.operation(op_id))["status"] in FINISHED:
                    done[op_id] = op
            if len(done) == len(op_ids):
                return done
            time.sleep(1)
        pytest.fail(f"{len(op_ids) - len(done)} operations did not finish in {timeout} s\n{self.logs()}")

    def events(self, host: Host, op_id: str, into: list[str]) -> threading.Thread:
        """Reads the operation's event stream from `host` in a thread: event names into `into`."""

        def read() -> None:
            with httpx.stream("GET", f"{host.url}/api/operations/{op_id}/events", headers=self.headers,
                              timeout=httpx.Timeout(30, read=300)) as r:  # fmt: skip
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        into.append(line.removeprefix("event: "))
                        if into[-1] == "end":
                            return

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        return thread

    # --- the shared database and the backend ------------------------------------------

    def rows(self, query: str, **params: Any) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(text(query), params))

    def runner_of(self, op_id: str) -> Host | None:
        """The host whose worker claimed the operation: the workers table names the pid
        of `serve`'s child worker process, in the session each host was started in."""
        found = self.rows("SELECT w.pid FROM operations o JOIN workers w ON w.id = o.claimed_by "
                          "WHERE o.id = :id AND o.status = 'running'", id=op_id)  # fmt: skip
        groups = {process_group(row.pid) for row in found}
        return next((h for h in self.hosts if h.proc is not None and h.proc.pid in groups), None)

    def end_lock_sessions(self) -> int:
        """Ends every stack-lock session on the service database, as a failover or an
        administrator would: how many there were."""
        query = text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE application_name = 'shipstack stack lock' AND datname = current_database()")  # fmt: skip
        with self.db.connect() as conn:
            return int(conn.scalar(query) or 0)

    def lock_rows(self, stack: str = "") -> list[str]:
        """Pulumi's lock rows in the backend's table (of one stack, or of all)."""
        query = text("SELECT key FROM pulumi_state WHERE key LIKE :like")
        with self.state_db.connect() as conn:
            if conn.scalar(text("SELECT to_regclass('pulumi_state')")) is None:
                return []
            return [r[0] for r in conn.execute(query, {"like": f"%/.pulumi/locks/%/{stack}%"})]

    def pending_operations(self, settings: Settings, stack: str) -> list[Any]:
        shared = {k: self.env[k] for k in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE")}
        env = {**os.environ, **workspace.engine_env(settings.engine), **shared}
        exported = subprocess.run(["pulumi", "stack", "export", "-s", stack], cwd=REPO_ROOT, env=env,
                                  capture_output=True, text=True, check=True).stdout  # fmt: skip
        return json.loads(exported)["deployment"].get("pending_operations") or []
