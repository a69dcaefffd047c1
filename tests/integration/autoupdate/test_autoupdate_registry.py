"""Auto-update against a REAL registry on loopback: distribution's `registry`
v3.1.1 (toolchain/registry), images pushed by `crane`, polled by the real client
and poller into a real database. No cluster: the queued operations are checked,
not run.

Covered: patch (1.0.0 -> 1.0.1, never 2.0.0), minor, a digest change on
`latest`, Link pagination, a 429 with Retry-After (a throttling proxy in front of
the registry), and a registry that requires a token (a token service of ours,
trusted by the registry through a JWKS file), anonymous and with credentials.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence.models import Operation
from programs.spec import AutoUpdate
from scheduler.jobs import AutoUpdateScheduler
from scheduler.registry import ClientOptions, RegistryClient, Repository
from stacks.settings import SchedulerSettings
from tests.fake_registries import FakeHttpRegistry, QuietHandler
from tests.integration.autoupdate.world import World, local, push
from toolchain.registry.local import (
    LocalRegistry,
    TokenServer,
    binary,
    crane,
    docker_config,
)

pytestmark = pytest.mark.skipif(
    binary("registry") is None or binary("crane") is None,
    reason="registry/crane not built: toolchain/build.sh builds them (toolchain/registry/go.mod)",
)


def test_patch_takes_1_0_1_and_never_2_0_0(registry: LocalRegistry, world: World) -> None:
    digests = {tag: push(registry, "apps/patch", tag, world.scratch) for tag in ("1.0.0", "1.0.1", "2.0.0")}
    image = f"{registry.host}/apps/patch:1.0.0"
    world.deploy("patchy", image, AutoUpdate(enabled=True, policy="patch"), strategy="recreate")
    with RegistryClient(local(registry)) as client:
        report = world.poller(client).poll()
    (update,) = report.updates
    assert update.image == f"{registry.host}/apps/patch:1.0.1@{digests['1.0.1']}"
    assert update.message == f"auto-update {registry.host}/apps/patch:1.0.0 -> 1.0.1 ({digests['1.0.1']})"
    (op,) = world.operations("patchy")
    assert op.kind == "auto-update"
    assert op.payload["change"] == {"image": update.image, "strategy": "recreate"}
    reasons = {c.tag: c.reason for c in world.status("patchy").decision.candidates}  # type: ignore[union-attr]
    assert reasons["2.0.0"] == "a major update; policy patch allows 1.0.x"
    assert report.tag_pages == 1 and report.manifest_heads == 1


def test_minor(registry: LocalRegistry, world: World) -> None:
    digests = {
        tag: push(registry, "apps/minor", tag, world.scratch)
        for tag in ("1.0.0", "1.0.1", "1.1.0", "1.2.0-rc.1", "2.0.0")
    }
    world.deploy("minor", f"{registry.host}/apps/minor:1.0.0", AutoUpdate(enabled=True, policy="minor"))
    with RegistryClient(local(registry)) as client:
        (update,) = world.poller(client).poll().updates
    assert update.image == f"{registry.host}/apps/minor:1.1.0@{digests['1.1.0']}"
    codes = {c.tag: c.code for c in world.status("minor").decision.candidates}  # type: ignore[union-attr]
    assert codes == {
        "1.1.0": "chosen", "1.0.1": "not-newest", "1.0.0": "current", "1.2.0-rc.1": "prerelease",
        "2.0.0": "outside-policy",
    }  # fmt: skip


def test_digest_change_on_latest(registry: LocalRegistry, world: World) -> None:
    first = push(registry, "apps/rolling", "1.0.0", world.scratch)
    crane("tag", f"{registry.host}/apps/rolling:1.0.0", "latest")
    world.deploy("follow", f"{registry.host}/apps/rolling:latest", AutoUpdate(enabled=True, policy="digest"))
    with RegistryClient(local(registry)) as client:
        poller = world.poller(client)
        assert poller.poll().updates == []
        assert (world.status("follow").action, world.status("follow").baseline_digest) == ("baseline", first)
        assert poller.poll(force=True).updates == []
        second = push(registry, "apps/rolling", "1.0.1", world.scratch)
        crane("copy", f"{registry.host}/apps/rolling:1.0.1", f"{registry.host}/apps/rolling:latest")
        report = poller.poll(force=True)
    (update,) = report.updates
    assert update.image == f"{registry.host}/apps/rolling:latest@{second}"
    assert report.tag_pages == 0  # digest policy: HEAD only
    assert world.status("follow").decision.current_digest == first  # type: ignore[union-attr]


def test_link_pagination_on_the_real_registry(registry: LocalRegistry, world: World) -> None:
    push(registry, "apps/many", "1.0.0", world.scratch)
    for i in range(1, 25):
        crane("tag", f"{registry.host}/apps/many:1.0.0", f"1.0.{i}")
    with RegistryClient(local(registry, page_size=10)) as client:
        listed = client.list_tags(Repository(registry.host, "apps/many"))
        assert (len(listed.tags), listed.pages, listed.truncated) == (25, 3, False)
    with RegistryClient(local(registry, page_size=10, max_pages=2)) as client:
        listed = client.list_tags(Repository(registry.host, "apps/many"))
        assert (len(listed.tags), listed.pages, listed.truncated) == (20, 2, True)


class ThrottlingProxy(FakeHttpRegistry):
    """Forwards to the registry, but answers the first `throttled` tag-list
    requests with 429 and `Retry-After`; records when each request arrived."""

    def __init__(self, upstream: str, throttled: int, retry_after: str) -> None:
        self.upstream = upstream
        self.throttled = throttled
        self.retry_after = retry_after
        self.arrivals: list[tuple[float, str, int]] = []
        outer = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                now = time.monotonic()
                if self.path.split("?")[0].endswith("/tags/list") and outer.throttled > 0:
                    outer.throttled -= 1
                    outer.arrivals.append((now, self.path, 429))
                    self.send_response(429)
                    self.send_header("Retry-After", outer.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                request = urllib.request.Request(outer.upstream + self.path, method=self.command)
                for key in ("Accept", "Authorization"):
                    if self.headers.get(key):
                        request.add_header(key, self.headers[key])
                try:
                    with urllib.request.urlopen(request, timeout=10) as resp:
                        status, headers, body = resp.status, resp.headers, resp.read()
                except urllib.error.HTTPError as err:
                    status, headers, body = err.code, err.headers, err.read()
                outer.arrivals.append((now, self.path, status))
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = _serve
            do_HEAD = _serve

        super().__init__(Handler)


def test_429_retry_after_is_obeyed(registry: LocalRegistry, world: World) -> None:
    digest = push(registry, "apps/limited", "1.0.1", world.scratch)
    push(registry, "apps/limited", "1.0.0", world.scratch)
    proxy = ThrottlingProxy(registry.url, throttled=2, retry_after="1")
    try:
        world.deploy("limited", f"{proxy.host}/apps/limited:1.0.0", AutoUpdate(enabled=True, policy="patch"))
        with RegistryClient(ClientOptions(jitter=0.2, allow_private=frozenset({proxy.host}))) as client:
            report = world.poller(client).poll()
            assert client.stats.retries == 2
    finally:
        proxy.stop()
    (update,) = report.updates
    assert update.image.endswith(f":1.0.1@{digest}")
    tag_requests = [(at, status) for at, path, status in proxy.arrivals if "/tags/list" in path]
    assert [status for _, status in tag_requests] == [429, 429, 200]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(tag_requests)]
    assert all(1.0 <= gap <= 1.2 + 0.5 for gap in gaps), gaps  # at least Retry-After, at most + jitter (+ slack)


def test_a_long_retry_after_pauses_polls_of_that_registry(registry: LocalRegistry, world: World) -> None:
    push(registry, "apps/paused", "1.0.1", world.scratch)
    proxy = ThrottlingProxy(registry.url, throttled=1, retry_after="3600")
    try:
        world.deploy("paused", f"{proxy.host}/apps/paused:1.0.0", AutoUpdate(enabled=True, policy="patch"))
        with RegistryClient(ClientOptions(allow_private=frozenset({proxy.host}))) as client:
            started = time.monotonic()
            report = world.poller(client).poll()
            assert time.monotonic() - started < 5  # not slept through in the poll
        assert report.errors == 1
        with RegistryClient(ClientOptions(allow_private=frozenset({proxy.host}))) as client:  # a restarted process
            world.poller(client).poll(force=True)
        assert len(proxy.arrivals) == 1
        assert "asked us to wait" in (world.status("paused").reason or "")
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRegistry, TokenServer, Path]]:
    tokens = TokenServer({"robot": "s3cret-pw"}, ttl_s=300).start()
    root = tmp_path_factory.mktemp("token-registry")
    with LocalRegistry(root, token=tokens) as reg:
        cfg = docker_config(root / "docker", reg.host, "robot", "s3cret-pw")
        yield reg, tokens, cfg
    tokens.stop()


def test_a_registry_that_requires_a_token(
    token_registry: tuple[LocalRegistry, TokenServer, Path], world: World
) -> None:
    reg, tokens, cfg = token_registry
    want = push(reg, "private/svc", "1.0.1", world.scratch, docker_cfg=cfg)
    push(reg, "private/svc", "1.0.0", world.scratch, docker_cfg=cfg)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{reg.url}/v2/private/svc/tags/list")
    assert refused.value.code == 401
    assert "Bearer realm=" in refused.value.headers["WWW-Authenticate"]

    world.deploy("svc", f"{reg.host}/private/svc:1.0.0", AutoUpdate(enabled=True, policy="patch"))
    # Without credentials the token service refuses: an error with a reason, nothing queued.
    with RegistryClient(local(reg)) as client:
        report = world.poller(client).poll()
    assert report.errors == 1 and report.updates == []
    assert "refused anonymous access" in (world.status("svc").reason or "")

    credentials = json.dumps({reg.host: {"username": "robot", "password": "s3cret-pw"}})
    options = ClientOptions.from_env({**reg.client_env(), "SHIPSTACK_REGISTRY_AUTH": credentials})
    issued_before = len(tokens.requests)
    with RegistryClient(options) as client:
        poller = world.poller(client)
        (update,) = poller.poll(force=True).updates
        assert update.image == f"{reg.host}/private/svc:1.0.1@{want}"
        world_ops = world.operations("svc")
        assert len(world_ops) == 1
        # Polls after the first reuse the cached token: no new token, no 401 round trip.
        with world.sessions() as s, s.begin():
            s.execute(Operation.__table__.update().values(status="succeeded"))
        before = client.stats.snapshot()
        poller.poll(force=True)
        after = client.stats.snapshot()
    assert len(tokens.requests) - issued_before == 1
    assert after["token_requests"] == before["token_requests"]
    assert tokens.requests[-1]["user"] == "robot"
    assert after["requests"] - before["requests"] == 2  # tag list + HEAD, both authorised up front


def test_anonymous_token_for_public_pulls(tmp_path: Path, world: World) -> None:
    tokens = TokenServer({"robot": "pw"}, anonymous_pull=True, ttl_s=60).start()
    try:
        with LocalRegistry(tmp_path / "anon", token=tokens) as reg:
            cfg = docker_config(tmp_path / "docker", reg.host, "robot", "pw")
            want = push(reg, "public/app", "2.1.0", world.scratch, docker_cfg=cfg)
            push(reg, "public/app", "2.0.0", world.scratch, docker_cfg=cfg)
            world.deploy("pub", f"{reg.host}/public/app:2.0.0", AutoUpdate(enabled=True, policy="minor"))
            with RegistryClient(local(reg)) as client:
                (update,) = world.poller(client).poll().updates
                assert client.stats.token_requests == 1
            assert update.image.endswith(f":2.1.0@{want}")
            assert tokens.requests[-1]["user"] is None
    finally:
        tokens.stop()


def test_the_scheduler_polls_on_its_own(registry: LocalRegistry, world: World) -> None:
    """APScheduler in the service: lease, persistent job store, interval, queue."""
    digest = push(registry, "apps/auto", "3.0.1", world.scratch)
    push(registry, "apps/auto", "3.0.0", world.scratch)
    world.deploy("auto", f"{registry.host}/apps/auto:3.0.0", AutoUpdate(enabled=True, policy="patch"))
    scheduler = AutoUpdateScheduler(
        world.settings,
        world.engine,
        config=SchedulerSettings(poll_interval_s=0.5, lease_ttl_s=2),
        client=RegistryClient(local(registry)),
        holder="svc-1",
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not world.operations("auto"):
            time.sleep(0.1)
    finally:
        scheduler.stop()
    (op,) = world.operations("auto")
    assert op.payload["change"]["image"] == f"{registry.host}/apps/auto:3.0.1@{digest}"
