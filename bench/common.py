"""What the benches share: a local cluster, the service as a real uvicorn process on
its own data folder and SQLite database, users and keys made straight in that
database, and percentiles.

The service runs in a child process of the bench, so its pulumi processes are the
bench's descendants (`toolchain.processes.ProcessSampler` sees them) and its CPU and
its waited-for children's CPU are read from /proc.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api.accounts import service as accounts  # noqa: E402
from persistence.db import make_engine, migrate, session_factory  # noqa: E402
from persistence.models import User  # noqa: E402
from toolchain.cluster import LocalCluster  # noqa: E402

SERVER = r"""
import sys, uvicorn
from api.http.app import build_app
from stacks.settings import Settings
uvicorn.run(build_app(Settings.from_env()), host="127.0.0.1", port=int(sys.argv[1]), loop="asyncio",
            log_level="warning", timeout_graceful_shutdown=5, backlog=4096)
"""
# What `make run` runs: `python -m api serve` (with role `all`, the operations in its
# child worker process unless SHIPSTACK_WORKER_PROCESS=false).
SERVE = r"""
import sys
from api.__main__ import serve
sys.exit(serve(["--port", sys.argv[1]]))
"""
READ_WRITE = ("deployments:read", "deployments:write")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`, nan for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def scratch(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"shipstack-bench-{prefix}-"))


@contextlib.contextmanager
def cluster_at(root: Path) -> Iterator[Path]:
    """The kubeconfig of $KUBECONFIG when set, else of a local cluster started here
    (and stopped at the end)."""
    if os.environ.get("KUBECONFIG"):
        yield Path(os.environ["KUBECONFIG"])
        return
    cluster = LocalCluster(root / "cluster")
    log(f"starting a local cluster in {cluster.dir}")
    cluster.up(wait_metrics=False)
    try:
        yield cluster.kubeconfig_path
    finally:
        cluster.down()


def service_env(root: Path, kubeconfig: Path | None, **extra: str) -> dict[str, str]:
    """The service's environment: its own data folder, SQLite database and backend,
    no rate limit (the benches send many requests from one key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPSTACK_")}
    env.update(
        SHIPSTACK_DATA=str(root / "data"),
        PULUMI_BACKEND_URL=f"file://{root / 'data' / 'state'}",
        SHIPSTACK_RATE_LIMIT="0",
        PYTHONPATH=str(REPO),
        **extra,
    )
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return env


def database_url(env: dict[str, str]) -> str:
    return f"sqlite:///{Path(env['SHIPSTACK_DATA']) / 'shipstack.db'}"


def make_user(env: dict[str, str], name: str, scopes: Sequence[str] = READ_WRITE) -> tuple[int, str]:
    """A user and an API key of it in the service's database: (user id, key)."""
    url = database_url(env)
    Path(env["SHIPSTACK_DATA"]).mkdir(parents=True, exist_ok=True)
    migrate(url)
    engine = make_engine(url)
    try:
        with session_factory(engine, immediate=True)() as db:  # the service may be writing
            user = accounts.create_user(db, name, password=None)
            _, key = accounts.issue_api_key(db, db.get(User, user.id), scopes=list(scopes))
            db.commit()
            return user.id, key
    finally:
        engine.dispose()


@dataclass
class ServiceProcess:
    """`build_app` under uvicorn in a child process on a free port."""

    env: dict[str, str]
    code: str = SERVER
    args: Sequence[str] = ()

    def __post_init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> ServiceProcess:
        cmd = [sys.executable, "-c", self.code, str(self.port), *self.args]
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=REPO)
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=self.base, timeout=5) as c:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if c.get("/api/health").status_code == 200:
                        return self
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the service did not start")
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(20)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def client(self, key: str, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)


def wait_operation(client: httpx.Client, op_id: str, poll_s: float = 0.1, timeout: float = 600) -> dict:
    """The operation's JSON once it has finished (its `finishedAt` says when, to the
    microsecond, so the polling interval does not blur timings; `finished_at`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/operations/{op_id}").json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(poll_s)
    raise SystemExit(f"operation {op_id} did not finish in {timeout} s")


def finished_at(operation: dict) -> float:
    """When an operation finished, in epoch seconds (the service runs on this machine's clock)."""
    return datetime.fromisoformat(operation["finishedAt"].replace("Z", "+00:00")).timestamp()


def wait_ready(client: httpx.Client, name: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/deployments/status?name={name}&wait=10").json()
        if body["status"] == "Ready":
            return
        if body["status"] == "Error":
            raise SystemExit(f"{name} failed: {body}")
    raise SystemExit(f"{name} was not Ready in {timeout} s")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
