"""Hostile tenants and hostile registries against the real poller (issue 11).

The registry a tenant's deployment names is distribution's real `registry` on
loopback (toolchain/registry), or, where the attack is the registry itself, a
fake one on loopback (`Fake...Registry`) standing in for one a tenant runs. The
client, the poller, the database and the app are the real ones.

- a backtracking filter on a long tag: the API's health answer stays fast;
- loopback is refused to a tenant's registry unless the operator allowlists it;
- a registry naming another registry's token realm gets no token;
- a slow registry costs its own deployments this poll and nobody else's.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
import pytest
import yaml
from litestar.testing import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from api.service import build_app
from persistence.accounts import add_user
from persistence.db import make_engine, migrate, session_factory
from persistence.models import Deployment, Operation
from programs.spec import AutoUpdate
from scheduler import store
from scheduler.poll import Poller
from scheduler.registry import ClientOptions, RegistryClient
from stacks.settings import Settings
from toolchain.registry.local import LocalRegistry, TokenServer, binary, crane, crane_push, docker_config

pytestmark = pytest.mark.skipif(
    binary("registry") is None or binary("crane") is None,
    reason="registry/crane not built: toolchain/build.sh builds them (toolchain/registry/go.mod)",
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def local(reg: LocalRegistry, **env: str) -> ClientOptions:
    """Options that allow this loopback registry, plus any other settings given."""
    return ClientOptions.from_env({**reg.client_env(), **env})


@dataclass
class World:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    user_id: int
    scratch: Path

    def deploy(self, name: str, image: str, auto: AutoUpdate) -> None:
        with self.sessions() as s, s.begin():
            s.add(Deployment(name=name, owner_user_id=self.user_id, template="image", image=image, status="Ready"))
        stacks = Path(self.settings.stacks_dir)
        stacks.mkdir(parents=True, exist_ok=True)
        config = {
            "shipstack:template": "image",
            "shipstack:image": image,
            "shipstack:strategy": "rolling",
            "shipstack:autoUpdate": msgspec.json.encode(auto, order="sorted").decode(),
        }
        (stacks / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))

    def status(self, name: str) -> store.DeploymentStatus:
        with self.sessions() as s:
            found = store.load_status(s, name)
        assert found is not None
        return found

    def operations(self, name: str) -> list[Operation]:
        with self.sessions() as s:
            return list(s.scalars(select(Operation).where(Operation.deployment_name == name)))


def new_world(tmp_path: Path) -> World:
    url = f"sqlite:///{tmp_path / 'shipstack.db'}"
    migrate(url)
    engine = make_engine(url)
    store.ensure_tables(engine)
    sessions = session_factory(engine, immediate=True)
    with sessions() as s, s.begin():
        user_id = add_user(s, "tenant", password_hash=None).id
    settings = Settings.from_env({"SHIPSTACK_DATA": str(tmp_path / "data"), "SHIPSTACK_DATABASE_URL": url})
    return World(settings=settings, engine=engine, sessions=sessions, user_id=user_id, scratch=tmp_path / "layers")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = new_world(tmp_path)
    yield w
    w.engine.dispose()


def push(registry: LocalRegistry, repo: str, tag: str, scratch: Path, **kw: object) -> str:
    return crane_push(registry.host, repo, tag, f"{repo}:{tag}:{time.time_ns()}", scratch, **kw)  # type: ignore[arg-type]


# --- 1. a tenant's filter cannot freeze the service -------------------------------------------

# `^(a+)+$` against `a...a-` makes a backtracking engine try every way to split the
# a's: 2^27 here, seconds of holding the GIL (the longest tag a registry accepts,
# 128 characters, would hold it for ever). RE2 answers in microseconds.
HOSTILE_INCLUDE = r"^(a+)+$"
HOSTILE_TAG = "a" * 27 + "-"


def test_the_api_answers_while_a_hostile_filter_is_polled(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    push(registry, "apps/redos", "1.0.0", tmp_path / "layers")
    for tag in ("1.0.1", HOSTILE_TAG):
        crane("tag", f"{registry.host}/apps/redos:1.0.0", tag)
    settings = Settings.from_env(
        {"SHIPSTACK_DATA": str(tmp_path / "data"), "SHIPSTACK_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}
    )
    app = build_app(settings, run_operations=False)
    with TestClient(app, timeout=60) as client:
        engine = app.state.engine
        store.ensure_tables(engine)
        sessions = app.state.write_session_factory
        with sessions() as s, s.begin():
            user_id = add_user(s, "tenant", password_hash=None).id
        world = World(settings=settings, engine=engine, sessions=sessions, user_id=user_id, scratch=tmp_path)
        auto = AutoUpdate(enabled=True, policy="patch", include=HOSTILE_INCLUDE)
        for i in range(3):
            world.deploy(f"redos{i}", f"{registry.host}/apps/redos:1.0.0", auto)
        assert client.get("/api/health").status_code == 200

        # Health is asked from its own thread for as long as the poll runs, and a little
        # before and after, so every moment of the poll is covered by a request in flight.
        latencies: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                response = client.get("/api/health")
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200

        prober = threading.Thread(target=probe, name="health-probe")
        prober.start()
        try:
            time.sleep(0.3)
            with RegistryClient(local(registry)) as registry_client:
                report = Poller(settings, sessions, registry_client).poll()
            time.sleep(0.3)
        finally:
            stop.set()
            prober.join(120)
    assert report.due == 3 and report.errors == 0
    assert len(latencies) >= 3
    assert max(latencies) < 0.5, f"GET /api/health took up to {max(latencies):.2f} s during the poll"
    codes = {c.tag: c.code for c in world.status("redos0").decision.candidates}  # type: ignore[union-attr]
    assert codes[HOSTILE_TAG] == "not-included"
    assert codes["1.0.1"] == "not-included"  # the filter is the tenant's word


# --- 3. a tenant cannot point the service at its own network -------------------------------------


def test_a_loopback_registry_is_refused_unless_the_operator_allowlists_it(
    registry: LocalRegistry, world: World
) -> None:
    push(registry, "apps/inside", "1.0.0", world.scratch)
    push(registry, "apps/inside", "1.0.1", world.scratch)
    world.deploy("probe", f"{registry.host}/apps/inside:1.0.0", AutoUpdate(enabled=True, policy="patch"))
    with RegistryClient() as client:
        report = Poller(world.settings, world.sessions, client).poll()
    assert report.errors == 1 and report.updates == []
    reason = world.status("probe").reason or ""
    assert "a loopback address; not connecting" in reason and "SHIPSTACK_REGISTRY_ALLOW_PRIVATE" in reason
    with RegistryClient(local(registry)) as client:
        (update,) = Poller(world.settings, world.sessions, client).poll(force=True).updates
    assert update.deployment == "probe"


# --- 2. a token minted for one registry stays with it ---------------------------------------------


class FakeTokenThiefRegistry:
    """A tenant's registry that answers every request with the challenge of another
    registry (its realm, service and scope), and keeps what it is sent."""

    def __init__(self, challenge: str) -> None:
        self.authorizations: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.authorizations.append(self.headers.get("Authorization"))
                self.send_response(401)
                self.send_header("WWW-Authenticate", challenge)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_registry_naming_another_registrys_realm_gets_no_token(tmp_path: Path, world: World) -> None:
    tokens = TokenServer({"robot": "s3cret-pw"}, ttl_s=300).start()
    try:
        with LocalRegistry(tmp_path / "private", token=tokens) as reg:
            cfg = docker_config(tmp_path / "docker", reg.host, "robot", "s3cret-pw")
            push(reg, "private/svc", "1.0.0", world.scratch, docker_cfg=cfg)
            push(reg, "private/svc", "1.0.1", world.scratch, docker_cfg=cfg)
            scope = "repository:private/svc:pull"
            thief = FakeTokenThiefRegistry(f'Bearer realm="{tokens.realm}",service="{tokens.service}",scope="{scope}"')
            try:
                world.deploy("victim", f"{reg.host}/private/svc:1.0.0", AutoUpdate(enabled=True, policy="patch"))
                world.deploy("thief", f"{thief.host}/private/svc:1.0.0", AutoUpdate(enabled=True, policy="patch"))
                # The operator's credentials are for the private registry only; the thief's
                # host is allowlisted here only because the test runs it on loopback.
                env = reg.client_env()
                options = ClientOptions.from_env({
                    **env,
                    "SHIPSTACK_REGISTRY_ALLOW_PRIVATE": f"{env['SHIPSTACK_REGISTRY_ALLOW_PRIVATE']},{thief.host}",
                    "SHIPSTACK_REGISTRY_AUTH": json.dumps({reg.host: {"username": "robot", "password": "s3cret-pw"}}),
                })  # fmt: skip
                # One worker: the victim's repository (and its token) first, then the thief's.
                options = dataclasses.replace(options, registry_concurrency=1)
                with RegistryClient(options) as client:
                    report = Poller(world.settings, world.sessions, client, max_workers=1).poll()
            finally:
                thief.stop()
    finally:
        tokens.stop()
    assert [u.deployment for u in report.updates] == ["victim"]
    assert thief.authorizations, "the thief was polled"
    assert all(a is None for a in thief.authorizations), thief.authorizations
    assert "refusing a token realm on another host" in (world.status("thief").reason or "")


# --- 3. a slow registry delays no other -------------------------------------------------------------


class FakeSlowRegistry:
    """A tenant's registry that answers every request slowly: headers at once, then
    its body a byte every 0.5 s (each read well within the per-read timeout).
    Counts the requests it serves at once."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_at_once = 0
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        body = b'{"tags": ["1.0.0", "1.0.1"]}'
        with self.lock:
            self.in_flight += 1
            self.requests += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            conn.recv(65536)
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
            for i in range(len(body)):
                conn.sendall(body[i : i + 1])
                time.sleep(0.5)
        except OSError:
            pass
        finally:
            with self.lock:
                self.in_flight -= 1
            conn.close()

    def stop(self) -> None:
        self.sock.close()


def test_a_slow_registry_costs_only_its_own_deployments_this_poll(registry: LocalRegistry, world: World) -> None:
    want = push(registry, "apps/steady", "1.0.1", world.scratch)
    push(registry, "apps/steady", "1.0.0", world.scratch)
    slow = FakeSlowRegistry()
    try:
        world.deploy("steady", f"{registry.host}/apps/steady:1.0.0", AutoUpdate(enabled=True, policy="patch"))
        for i in range(6):
            world.deploy(f"slow{i}", f"{slow.host}/apps/slow{i}:1.0.0", AutoUpdate(enabled=True, policy="patch"))
        options = local(
            registry,
            SHIPSTACK_REGISTRY_ALLOW_PRIVATE=f"{registry.host},{slow.host}",
            SHIPSTACK_REGISTRY_POLL_DEADLINE="2",
            SHIPSTACK_REGISTRY_CONCURRENCY="2",
        )
        with RegistryClient(options) as client:
            report = Poller(world.settings, world.sessions, client).poll()
    finally:
        slow.stop()
    (update,) = report.updates
    assert update.image == f"{registry.host}/apps/steady:1.0.1@{want}"
    assert slow.most_at_once <= 2
    reasons = [world.status(f"slow{i}").reason or "" for i in range(6)]
    assert all(world.status(f"slow{i}").action == "error" for i in range(6)), reasons
    assert sum("no answer within its 2 s share of this poll" in r for r in reasons) == slow.requests, reasons
    assert sum("not polled: its 2 s share of this poll ran out" in r for r in reasons) == 6 - slow.requests, reasons
