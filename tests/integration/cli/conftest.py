"""The `shipstack` console script against the real service served over HTTP.

The service is the whole app (operation runner, real pulumi engine and provider,
the local cluster) served by uvicorn on a loopback port in a background thread
(the browser tests' `serve`), on its own SQLite database; the CLI runs as a subprocess, as a user runs it, with
its own HOME, so its login file is the test's. `TcpProxy` sits between them when a
test needs to cut the connection the way a flaky network does.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config
from litestar import Litestar

from api.http.app import build_app
from stacks.settings import Settings
from tests.browser.conftest import serve
from tests.integration.conftest import add_user_with_key

SHIPSTACK = Path(sys.executable).with_name("shipstack")  # the console script of this virtualenv


@dataclass
class HttpService:
    url: str
    key: str  # of user "tester", deployments:read and write
    app: Litestar
    settings: Settings


@contextlib.contextmanager
def serve_over_http(settings: Settings) -> Iterator[HttpService]:
    app = build_app(settings)
    with contextlib.contextmanager(serve)(app) as url:
        yield HttpService(url=url, key=add_user_with_key(app), app=app, settings=settings)


@pytest.fixture
def http_service(settings: Settings, tmp_path: Path) -> Iterator[HttpService]:
    with serve_over_http(settings.with_database(f"sqlite:///{tmp_path / 'db.sqlite'}")) as svc:
        yield svc


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


class Cli:
    """Runs the console script with a home of its own (no SHIPSTACK_URL/TOKEN unless given)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        env = {k: v for k, v in os.environ.items() if k not in ("SHIPSTACK_URL", "SHIPSTACK_TOKEN")}
        self.env = env | {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "config")}

    @property
    def config_file(self) -> Path:
        return self.home / "config" / "shipstack" / "config.json"

    def __call__(self, *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 600) -> Result:
        done = subprocess.run(
            [str(SHIPSTACK), *args], input=stdin, capture_output=True, text=True,
            env=self.env | (env or {}), timeout=timeout, check=False,
        )  # fmt: skip
        return Result(done.returncode, done.stdout, done.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(SHIPSTACK), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )

    def login(self, url: str, key: str) -> Result:
        return self("login", url, "--token-stdin", stdin=key + "\n")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    return Cli(home)


class TcpProxy:
    """Forwards a loopback port to `target_port`; `cut()` drops every open connection,
    `down()` also hangs up on new ones until the block ends (the network is out)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._down = False
        threading.Thread(target=self._accept, name="proxy", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self._down:
                downstream.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open += [downstream, upstream]
            for src, dst in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> int:
        """Drops the open connections (as a network failure would); answers how many."""
        with self._lock:
            dropped, self._open = self._open, []
        for s in dropped:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        return len(dropped) // 2

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        self._down = True
        self.cut()
        try:
            yield
        finally:
            self._down = False

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def proxy(http_service: HttpService) -> Iterator[TcpProxy]:
    p = TcpProxy(int(http_service.url.rsplit(":", 1)[1]))
    yield p
    p.close()


class Kube:
    """The cluster as kubectl would show it: what the CLI's commands really did."""

    def __init__(self, settings: Settings) -> None:
        api = config.new_client_from_config(config_file=str(settings.engine.kubeconfig))
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)

    def running_pods(self, namespace: str) -> set[str]:
        pods = self.core.list_namespaced_pod(namespace).items
        return {p.metadata.name for p in pods if p.metadata.deletion_timestamp is None and p.status.phase == "Running"}

    def env(self, namespace: str, service: str) -> dict[str, str]:
        secret = self.core.read_namespaced_secret(f"{service}-env", namespace)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def namespaces(self) -> set[str]:
        return {n.metadata.name for n in self.core.list_namespace().items}


@pytest.fixture
def kube(settings: Settings) -> Kube:
    return Kube(settings)
