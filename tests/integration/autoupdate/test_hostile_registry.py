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

import json
import threading
import time
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api.http.app import build_app
from api.http.context import context_of
from persistence.accounts import add_user
from programs.spec import AutoUpdate
from scheduler.poll import Poller
from scheduler.registry import ClientOptions, RegistryClient
from stacks.settings import Settings
from tests.fake_registries import FakeHttpRegistry, FakeSlowRegistry, QuietHandler
from tests.integration.autoupdate.world import World, local, push
from toolchain.registry.local import LocalRegistry, TokenServer, binary, crane, docker_config

pytestmark = pytest.mark.skipif(
    binary("registry") is None or binary("crane") is None,
    reason="registry/crane not built: toolchain/build.sh builds them (toolchain/registry/go.mod)",
)


# --- 1. a tenant's filter cannot freeze the service -------------------------------------------

# `^(a+)+$` against `a...a-` makes a backtracking engine try every way to split the
# a's: 2^27 here, seconds of holding the GIL (the longest tag a registry accepts,
# 128 characters, would hold it for ever). RE2 answers in microseconds.
HOSTILE_INCLUDE = r"^(a+)+$"
HOSTILE_TAG = "a" * 27 + "-"


def test_the_api_answers_while_a_hostile_filter_is_polled(registry: LocalRegistry, tmp_path: Path) -> None:
    push(registry, "apps/redos", "1.0.0", tmp_path / "layers")
    for tag in ("1.0.1", HOSTILE_TAG):
        crane("tag", f"{registry.host}/apps/redos:1.0.0", tag)
    settings = Settings.from_env(
        {"SHIPSTACK_DATA": str(tmp_path / "data"), "SHIPSTACK_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}
    )
    app = build_app(settings, run_operations=False)
    with TestClient(app, timeout=60) as client:
        engine = context_of(app.state).db.engine
        sessions = context_of(app.state).db.writes
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


class FakeTokenThiefRegistry(FakeHttpRegistry):
    """A tenant's registry that answers every request with the challenge of another
    registry (its realm, service and scope), and keeps what it is sent."""

    def __init__(self, challenge: str) -> None:
        self.authorizations: list[str | None] = []
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                outer.authorizations.append(self.headers.get("Authorization"))
                self.send_response(401)
                self.send_header("WWW-Authenticate", challenge)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

        super().__init__(Handler)


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
                with RegistryClient(options) as client:
                    # One worker: the victim's repository (and its token) first, then the thief's.
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


def test_a_slow_registry_costs_only_its_own_deployments_this_poll(registry: LocalRegistry, world: World) -> None:
    want = push(registry, "apps/steady", "1.0.1", world.scratch)
    push(registry, "apps/steady", "1.0.0", world.scratch)
    slow = FakeSlowRegistry(every_s=0.5)  # ~40 s an answer, a byte every 0.5 s
    try:
        world.deploy("steady", f"{registry.host}/apps/steady:1.0.0", AutoUpdate(enabled=True, policy="patch"))
        for i in range(6):
            world.deploy(f"slow{i}", f"{slow.host}/apps/slow{i}:1.0.0", AutoUpdate(enabled=True, policy="patch"))
        options = local(
            registry,
            {
                "SHIPSTACK_REGISTRY_ALLOW_PRIVATE": f"{registry.host},{slow.host}",
                "SHIPSTACK_REGISTRY_POLL_DEADLINE": "2",
                "SHIPSTACK_REGISTRY_CONCURRENCY": "2",
            },
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
