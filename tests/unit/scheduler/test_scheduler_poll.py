"""scheduler.poll on a real SQLite database with stack config files and a fake
registry (httpx.MockTransport): grouping, due times, what is queued and recorded,
memory across restarts, failures, and the leader fence."""

from __future__ import annotations

import json
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import msgspec
import pytest
import yaml
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from persistence import operations as ops
from persistence import revisions
from persistence.accounts import add_user
from persistence.base import utcnow
from persistence.db import make_engine, migrate, session_factory
from persistence.models import Deployment, Operation
from programs.spec import AutoUpdate
from scheduler import store
from scheduler.failures import enqueue_rollback, record_failed_update
from scheduler.leader import LeaderLease
from scheduler.poll import Poller
from scheduler.registry import ClientOptions, RegistryClient
from scheduler.targets import ConfigCache
from stacks.changes import Change
from stacks.settings import Settings

HOST = "registry.example.test"


def digest(seed: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


@dataclass
class Fake:
    """Tags and digests per repository path; counts what it is asked."""

    repos: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> tag -> digest
    log: list[tuple[str, str]] = field(default_factory=list)
    throttle: list[str] = field(default_factory=list)  # Retry-After values answered with 429 first

    def push(self, path: str, tag: str, seed: str | None = None) -> str:
        d = digest(seed or f"{path}:{tag}")
        self.repos.setdefault(path, {})[tag] = d
        return d

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.log.append((request.method, path))
        if self.throttle:
            return httpx.Response(429, headers={"Retry-After": self.throttle.pop(0)})
        if path.endswith("/tags/list"):
            name = path[len("/v2/") : -len("/tags/list")]
            if name not in self.repos:
                return httpx.Response(404, json={"errors": [{"message": "repository name not known"}]})
            return httpx.Response(200, json={"name": name, "tags": sorted(self.repos[name])})
        name, _, ref = path[len("/v2/") :].partition("/manifests/")
        found = self.repos.get(name, {}).get(ref)
        if found is None:
            return httpx.Response(404)
        return httpx.Response(200, headers={"Docker-Content-Digest": found})

    def count(self, kind: str) -> int:
        if kind == "tags":
            return sum(1 for _, p in self.log if p.endswith("/tags/list"))
        return sum(1 for m, _ in self.log if m == "HEAD")


@dataclass
class Env:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    fake: Fake
    user_id: int

    def client(self) -> RegistryClient:
        return RegistryClient(ClientOptions(jitter=0.0), transport=httpx.MockTransport(self.fake.handler))

    def poller(self, **kw: object) -> Poller:
        return Poller(self.settings, self.sessions, self.client(), **kw)  # type: ignore[arg-type]

    def deploy(
        self,
        name: str,
        image: str | None,
        auto: AutoUpdate | None = None,
        *,
        status: str = "Ready",
        strategy: str = "rolling",
        template: str = "image",
    ) -> None:
        with self.sessions() as s, s.begin():
            s.add(Deployment(name=name, owner_user_id=self.user_id, template=template, image=image, status=status))
        self.write_config(name, image, auto, strategy=strategy, template=template)

    def write_config(self, name: str, image: str | None, auto: AutoUpdate | None, **kw: str) -> None:
        with self.sessions() as s, s.begin():
            s.execute(
                update(Deployment)
                .where(Deployment.name == name)
                .values(stack_config=stack_config_text(name, image, auto, **kw))
            )

    def operations(self, name: str | None = None) -> list[Operation]:
        with self.sessions() as s:
            q = select(Operation).order_by(Operation.created_at)
            if name:
                q = q.where(Operation.deployment_name == name)
            return list(s.scalars(q))

    def status(self, name: str) -> store.DeploymentStatus:
        with self.sessions() as s:
            found = store.load_status(s, name)
        assert found is not None
        return found

    def finish_all(self) -> None:
        with self.sessions() as s, s.begin():
            s.execute(update(Operation).values(status="succeeded", payload=None))


def stack_config_text(
    name: str,
    image: str | None,
    auto: AutoUpdate | None,
    *,
    strategy: str = "rolling",
    template: str = "image",
) -> str:
    """A stack config of record as the engine writes it (plain values; the env secret
    is a stand-in: the poll never reads it)."""
    config = {
        "shipstack:name": name,
        "shipstack:template": template,
        "shipstack:image": image or "",
        "shipstack:strategy": strategy,
        "shipstack:autoUpdate": msgspec.json.encode(auto or AutoUpdate(), order="sorted").decode(),
        "shipstack:env": {"secure": "v1:abc:def"},
    }
    return yaml.safe_dump({"encryptionsalt": "v1:x:y", "config": config})


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    url = f"sqlite:///{tmp_path / 'shipstack.db'}"
    migrate(url)
    engine = make_engine(url)
    settings = Settings.from_env({"SHIPSTACK_DATA": str(tmp_path / "data"), "SHIPSTACK_DATABASE_URL": url})
    sessions = session_factory(engine, immediate=True)
    with sessions() as s, s.begin():
        user_id = add_user(s, "owner", password_hash=None).id
    yield Env(settings=settings, engine=engine, sessions=sessions, fake=Fake(), user_id=user_id)
    engine.dispose()


def patch(**kw: object) -> AutoUpdate:
    return AutoUpdate(enabled=True, policy="patch", **kw)  # type: ignore[arg-type]


def test_patch_update_is_queued_pinned_by_digest(env: Env) -> None:
    for tag in ("1.0.0", "1.0.1", "2.0.0"):
        env.fake.push("team/app", tag)
    env.deploy("web", f"{HOST}/team/app:1.0.0", patch(), strategy="recreate")
    report = env.poller().poll()
    assert [u.deployment for u in report.updates] == ["web"]
    (op,) = env.operations("web")
    assert op.kind == "auto-update"
    want = f"{HOST}/team/app:1.0.1@{digest('team/app:1.0.1')}"
    assert op.payload["change"] == {"image": want, "strategy": "recreate"}
    assert msgspec.convert(op.payload["change"], Change) == Change(image=want, strategy="recreate")
    assert op.payload["auto_update"]["from"] == f"{HOST}/team/app:1.0.0"
    assert op.message == f"auto-update {HOST}/team/app:1.0.0 -> 1.0.1 ({digest('team/app:1.0.1')})"
    status = env.status("web")
    assert (status.action, status.operation_id) == ("update", op.id)
    codes = {c.tag: c.code for c in status.decision.candidates}  # type: ignore[union-attr]
    assert codes == {"1.0.1": "chosen", "1.0.0": "current", "2.0.0": "outside-policy"}


def test_one_tag_list_per_repository_however_many_deployments(env: Env) -> None:
    for repo in ("a", "b", "c"):
        env.fake.push(f"team/{repo}", "1.0.0")
        env.fake.push(f"team/{repo}", "1.0.1")
    for i in range(30):
        repo = "abc"[i % 3]
        # Half run the newest already; the other half is behind.
        tag = "1.0.1" if i % 2 else "1.0.0"
        env.deploy(f"d{i}", f"{HOST}/team/{repo}:{tag}", patch())
    report = env.poller().poll()
    assert report.due == 30 and report.repositories == 3
    assert env.fake.count("tags") == 3
    assert env.fake.count("head") == 3  # one HEAD per (repository, chosen tag)
    assert len(report.updates) == 15
    assert report.requests == 6


def test_digest_policy_needs_no_tag_list_and_follows_latest(env: Env) -> None:
    env.fake.push("team/app", "latest", seed="one")
    env.deploy("web", f"{HOST}/team/app:latest", AutoUpdate(enabled=True, policy="digest"))
    poller = env.poller(poll_interval_s=60)
    first = poller.poll()
    assert first.updates == [] and env.fake.count("tags") == 0
    assert env.status("web").action == "baseline"
    assert env.status("web").baseline_digest == digest("one")
    assert poller.poll(force=True).updates == []  # unchanged
    env.fake.push("team/app", "latest", seed="two")
    report = poller.poll(force=True)
    (op,) = env.operations("web")
    assert op.payload["change"]["image"] == f"{HOST}/team/app:latest@{digest('two')}"
    assert report.updates[0].message == f"auto-update {HOST}/team/app:latest -> latest ({digest('two')})"
    assert env.fake.count("tags") == 0


def test_digest_policy_on_a_pinned_image_compares_with_the_pin(env: Env) -> None:
    env.fake.push("team/app", "latest", seed="two")
    env.deploy("web", f"{HOST}/team/app:latest@{digest('one')}", AutoUpdate(enabled=True, policy="digest"))
    report = env.poller().poll()
    assert len(report.updates) == 1
    assert env.status("web").decision.current_digest == digest("one")  # type: ignore[union-attr]


def test_due_times_follow_global_and_per_deployment_intervals(env: Env) -> None:
    env.fake.push("team/app", "1.0.0")
    env.deploy("slow", f"{HOST}/team/app:1.0.0", patch())
    env.deploy("fast", f"{HOST}/team/app:1.0.0", patch(interval_s=60))
    clock = [utcnow()]
    poller = env.poller(poll_interval_s=300, clock=lambda: clock[0])
    assert poller.poll().due == 2
    clock[0] += timedelta(seconds=61)
    report = poller.poll()
    assert report.due == 1 and env.status("fast").checked_at == clock[0]
    clock[0] += timedelta(seconds=240)
    assert poller.poll().due == 2
    assert poller.poll().due == 0
    assert env.fake.count("tags") == 3


def test_memory_survives_a_restart(env: Env) -> None:
    """A new process (new Poller, new client) finds the due times and baselines."""
    env.fake.push("team/app", "latest", seed="one")
    env.deploy("web", f"{HOST}/team/app:latest", AutoUpdate(enabled=True, policy="digest"))
    env.poller().poll()
    restarted = env.poller()
    assert restarted.poll().due == 0  # checked moments ago
    env.fake.push("team/app", "latest", seed="two")
    report = restarted.poll(force=True)
    assert len(report.updates) == 1  # the baseline from before the restart counted


def test_busy_and_unready_deployments_are_skipped_with_a_reason(env: Env) -> None:
    env.fake.push("team/app", "1.0.1")
    env.deploy("busy", f"{HOST}/team/app:1.0.0", patch())
    env.deploy("broken", f"{HOST}/team/app:1.0.0", patch(), status="Error")
    env.deploy("off", f"{HOST}/team/app:1.0.0", AutoUpdate(enabled=False))
    with env.sessions() as s, s.begin():
        ops.enqueue(s, "busy", "config", {"change": {}}, "config update")
    report = env.poller().poll()
    assert report.updates == [] and report.skipped == 2 and report.due == 0
    assert env.status("busy").reason == "an operation is queued or running; next poll"
    assert env.status("broken").reason == "the deployment is Error, not Ready"
    with env.sessions() as s:
        assert store.load_status(s, "off") is None
    assert env.fake.log == []


def test_template_deployments_use_the_template_image(env: Env) -> None:
    env.fake.push("library/nginx", "1.27")
    env.fake.push("library/nginx", "1.28")
    env.deploy("site", None, AutoUpdate(enabled=True, policy="minor"), template="nginx")

    def hub(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "registry-1.docker.io"
        return env.fake.handler(request)

    poller = Poller(env.settings, env.sessions, RegistryClient(transport=httpx.MockTransport(hub)))
    report = poller.poll()
    assert report.updates[0].image == f"nginx:1.28@{digest('library/nginx:1.28')}"
    assert report.updates[0].message.startswith("auto-update nginx:1.27 -> 1.28 (sha256:")


def test_failed_digest_is_never_retried(env: Env) -> None:
    for tag in ("1.0.0", "1.0.1", "1.0.2"):
        env.fake.push("team/app", tag)
    env.deploy("web", f"{HOST}/team/app:1.0.0", patch())
    poller = env.poller()
    (first,) = poller.poll().updates
    assert "1.0.2" in first.image
    (op,) = env.operations("web")
    payload = dict(op.payload)
    env.finish_all()
    with env.sessions() as s, s.begin():
        rollback = enqueue_rollback(s, "web", payload, "rollout did not become Available in 600 s", previous_revision=3)
    assert rollback.kind == "rollback"
    assert rollback.payload["change"] == {"rollback_version": 3}
    assert rollback.message.startswith("auto-update rollback to revision 3: ")
    assert env.status("web").action == "failed"
    env.finish_all()
    report = poller.poll(force=True)
    (second,) = report.updates
    assert "1.0.1" in second.image
    candidates = {c.tag: c for c in env.status("web").decision.candidates}  # type: ignore[union-attr]
    assert candidates["1.0.2"].code == "bad-digest"
    assert "rollout did not become Available" in candidates["1.0.2"].reason


def test_rollback_without_history_puts_the_old_image_back(env: Env) -> None:
    payload = {"auto_update": {"from": "a:1", "to": "a:2@" + digest("x"), "digest": digest("x"), "strategy": "rolling"}}
    env.deploy("web", "a:1", patch())
    with env.sessions() as s, s.begin():
        op = enqueue_rollback(s, "web", payload, "timed out", previous_revision=None)
        record_failed_update(s, "web", digest("y"), "crash loop")
    assert op.payload["change"] == {"image": "a:1", "strategy": "rolling"}
    with env.sessions() as s:
        assert set(store.bad_digests(s, ["web"])["web"]) == {digest("x"), digest("y")}


def test_registry_errors_are_recorded_per_deployment(env: Env) -> None:
    env.deploy("web", f"{HOST}/team/missing:1.0.0", patch())
    report = env.poller().poll()
    assert report.errors == 1
    status = env.status("web")
    assert status.action == "error" and "repository name not known" in (status.reason or "")
    with env.sessions() as s:
        repo = store.load_repositories(s, [f"{HOST}/team/missing"])[f"{HOST}/team/missing"]
    assert "not found" in (repo.error or "")


def test_a_long_retry_after_pauses_the_repository_across_restarts(env: Env) -> None:
    env.fake.push("team/app", "1.0.1")
    env.deploy("web", f"{HOST}/team/app:1.0.0", patch())
    env.fake.throttle = ["3600"]
    report = env.poller().poll()
    assert report.errors == 1 and len(env.fake.log) == 1
    with env.sessions() as s:
        blocked = store.load_repositories(s, [f"{HOST}/team/app"])[f"{HOST}/team/app"].blocked_until
    assert blocked is not None and blocked > utcnow() + timedelta(minutes=59)
    env.poller().poll(force=True)  # a restarted process: still waits, sends nothing
    assert len(env.fake.log) == 1
    assert "asked us to wait" in (env.status("web").reason or "")


def test_a_poll_that_lost_the_lease_writes_nothing(env: Env) -> None:
    env.fake.push("team/app", "1.0.1")
    env.deploy("web", f"{HOST}/team/app:1.0.0", patch())
    mine = LeaderLease(env.engine, "me", ttl_s=30)
    theirs = LeaderLease(env.engine, "them", ttl_s=30)
    assert theirs.try_acquire()
    report = env.poller(lease=mine).poll()
    assert report.fenced_out
    assert env.operations() == []
    with env.sessions() as s:
        assert store.load_status(s, "web") is None


def test_plain_config_reader_skips_secrets_and_caches() -> None:
    text = stack_config_text("web", "a:1", patch())
    cache = ConfigCache()
    values = cache.read("web", text)
    assert values is not None and values["shipstack:image"] == "a:1"
    assert "shipstack:env" not in values
    assert json.loads(values["shipstack:autoUpdate"])["policy"] == "patch"
    assert cache.read("web", text) is values
    assert cache.read("web", stack_config_text("web", "a:2", patch())) == {**values, "shipstack:image": "a:2"}
    assert cache.read("nope", None) is None


def test_status_rows_of_deleted_deployments_are_dropped(env: Env) -> None:
    env.fake.push("team/app", "1.0.0")
    env.deploy("web", f"{HOST}/team/app:1.0.0", patch())
    env.poller().poll()
    with env.sessions() as s, s.begin():
        s.execute(Deployment.__table__.delete())
    env.poller().poll()
    with env.sessions() as s:
        assert store.load_status(s, "web") is None


def test_the_runner_hook_rolls_back_failed_auto_updates_only(env: Env) -> None:
    import scheduler.failures as failures

    env.deploy("web", "a:1", patch())
    hook = failures.RollbackOnFailure(env.settings, env.sessions)
    bad = "a:2@" + digest("x")
    payload = {"change": {"image": bad}, "auto_update": {"from": "a:1", "to": bad, "digest": digest("x")}}
    assert hook("config", "web", {"change": {}}, "boom") is None
    # No revision to go back to: the image the auto-update replaced is put back.
    op = hook("auto-update", "web", payload, "timed out")
    assert op is not None and op.payload["change"] == {"image": "a:1"}
    with env.sessions() as s, s.begin():
        row = s.scalar(select(Deployment).where(Deployment.name == "web"))
        for image, result in (("a:1", "succeeded"), ("a:0", "succeeded"), (bad, "succeeded"), (bad, "failed")):
            revisions.record(
                s, row.id, result=result, message=image, config=stack_config_text("web", image, patch()),
                resource_changes={}, operation_id=None, started_at=utcnow(),
            )  # fmt: skip
    op = hook("auto-update", "web", payload, "deployment app did not become Available in 600 s")
    assert op is not None and op.kind == "rollback"
    # The newest revision that succeeded without the failed image: 2 (a:0).
    assert op.payload["change"] == {"rollback_version": 2}
    with env.sessions() as s:
        assert digest("x") in store.bad_digests(s, ["web"])["web"]


# --- hostile registries: one registry's answer hurts only its own deployments -------------


def test_a_registry_answering_nonsense_fails_only_its_own_deployments(env: Env) -> None:
    env.fake.push("team/app", "1.0.0")
    env.fake.push("team/app", "1.0.1")
    env.deploy("good", f"{HOST}/team/app:1.0.0", patch())
    env.deploy("victim", "evil.example.test/team/app:1.0.0", patch())

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "evil.example.test":
            return httpx.Response(200, content=b'["not", "a", "tag", "list"]')
        return env.fake.handler(request)

    report = Poller(env.settings, env.sessions, RegistryClient(transport=httpx.MockTransport(handler))).poll()
    assert [u.deployment for u in report.updates] == ["good"]
    assert env.status("victim").action == "error"
    assert "not a JSON tag list" in (env.status("victim").reason or "")


def test_an_absurd_retry_after_pauses_that_registry_for_a_day_at_most(env: Env) -> None:
    env.fake.push("team/app", "1.0.1")
    env.fake.throttle = ["9" * 40]  # ~1e40 s: past every date a datetime can hold
    env.deploy("web", f"{HOST}/team/app:1.0.0", patch())
    before = utcnow()
    report = env.poller().poll()
    assert report.errors == 1
    with env.sessions() as s:
        state = store.load_repositories(s, [f"{HOST}/team/app"])[f"{HOST}/team/app"]
    assert state.blocked_until is not None
    assert state.blocked_until <= before + timedelta(days=1, minutes=1)


HOSTILE_TAGS = ["<img src=x onerror=alert(1)>", "1.0.9\n[INFO] forged", "1.0.8\u202egnp", "1.0.7" + "9" * 3000]


def test_what_a_registry_says_reaches_the_status_short_and_plain(env: Env) -> None:
    env.fake.push("team/app", "1.0.0")
    env.fake.push("team/app", "1.0.1")
    env.deploy("web", f"{HOST}/team/app:1.0.0", patch())
    env.deploy("gone", f"{HOST}/team/missing:1.0.0", patch())
    message = "<b>gone</b>\x1b[2J\r\n[ERROR] forged line\u202e" + "x" * 5000

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/team/app/tags/list":
            return httpx.Response(200, json={"tags": ["1.0.0", "1.0.1", *HOSTILE_TAGS]})
        if request.url.path == "/v2/team/missing/tags/list":
            return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN", "message": message}]})
        return env.fake.handler(request)

    Poller(env.settings, env.sessions, RegistryClient(transport=httpx.MockTransport(handler))).poll()
    web = env.status("web")
    assert [c.tag for c in web.decision.candidates] == ["1.0.1", "1.0.0"]  # type: ignore[union-attr]
    assert "4 listed names are not valid tags and were ignored" in web.decision.reason  # type: ignore[union-attr]
    reason = env.status("gone").reason or ""
    assert len(reason) <= 500
    assert not [c for c in reason if unicodedata.category(c) in ("Cc", "Cf")], repr(reason)
    assert "<b>gone</b>" in reason and "[ERROR] forged line" in reason  # text, shown as text


def test_a_slow_registry_costs_only_its_own_deployments_this_poll(env: Env) -> None:
    """Each answer of slow.example.test takes 0.4 s and its share of the poll is 1 s:
    it is asked about at most two repositories at once (its concurrency), the ones
    left when its share runs out are errors for this poll, and the other registry's
    deployment is updated all the same."""
    env.fake.push("team/app", "1.0.0")
    env.fake.push("team/app", "1.0.1")
    env.deploy("fast", f"{HOST}/team/app:1.0.0", patch())
    for i in range(8):
        env.deploy(f"slow{i}", f"slow.example.test/team/app{i}:1.0.0", patch())
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most at once

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host != "slow.example.test":
            return env.fake.handler(request)
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
        time.sleep(0.4)
        with lock:
            in_flight[0] -= 1
        return httpx.Response(200, json={"tags": ["1.0.0"]})

    options = ClientOptions.from_env({"SHIPSTACK_REGISTRY_POLL_DEADLINE": "1", "SHIPSTACK_REGISTRY_CONCURRENCY": "2"})
    client = RegistryClient(options, transport=httpx.MockTransport(handler))
    report = Poller(env.settings, env.sessions, client, max_workers=8).poll()
    assert [u.deployment for u in report.updates] == ["fast"]
    assert in_flight[1] <= 2
    reasons = [env.status(f"slow{i}").reason or "" for i in range(8)]
    assert any("slow.example.test: not polled: its 1 s share of this poll ran out" in r for r in reasons), reasons
    assert all(env.status(f"slow{i}").action in ("none", "error") for i in range(8))
