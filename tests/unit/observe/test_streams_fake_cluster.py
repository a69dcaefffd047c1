"""The observe routes and the log follower against an in-memory stand-in for the
Kubernetes API (`FakeKube`, tests/fake_cluster.py), so the rules are checked in seconds: merging and
prefixes, bounds, unknown services, tenancy, not-ready deployments, an
unreachable cluster, a missing metrics API, event order, resuming a stream from
its cursor, following replaced pods, closing everything on disconnect, and the
operation progress stream. The same behaviour against the real local cluster is
in tests/integration/test_observe_cluster.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from api.auth.credentials import key_prefix
from api.auth.principal import READ, WRITE
from api.http.app import build_app
from api.http.context import context_of
from api.observe import hub as observe_hub
from api.observe.codec import LogLine, SourceKey, decode_cursor, encode_cursor
from api.observe.follower import LogFollower
from api.observe.formats import parse_time_ns
from api.observe.hub import PodChange, SourceEnded, open_hubs
from api.observe.kube import Kube
from api.observe.kube_models import Event, KubeNotFound, KubeUnavailable
from api.observe.streams import open_streams
from api.operations import stream as operation_stream
from persistence import operations as ops
from persistence.base import utcnow
from persistence.models import ApiKey, Deployment
from stacks.runner import Runner
from stacks.settings import Settings
from tests.fake_cluster import FakeKube
from tests.seed import Seed, bearer

T0 = parse_time_ns("2025-01-02T03:04:05Z") or 0
SECOND = 1_000_000_000
SELECTOR = "shipstack.dev/deployment=web1,shipstack.dev/service=nginx"


# --- the follower -----------------------------------------------------------------------


async def _lines(follower: LogFollower, count: int, timeout: float = 3.0) -> tuple[list[LogLine], list[Any]]:
    """The next `count` log lines (marking them delivered), and the other items seen meanwhile."""
    lines: list[LogLine] = []
    other: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(lines)} of {count} lines arrived: {[x.text for x in lines]} {other}"
        for item in await follower.next_batch(left):
            if isinstance(item, LogLine):
                follower.delivered_line(item)
                lines.append(item)
            else:
                if isinstance(item, SourceEnded):
                    follower.source_ended(item.source)
                other.append(item)
    return lines, other


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_follower_tails_follows_resumes_and_follows_a_replacement_pod() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        kube.add_pod("web-a", T0)
        for i in range(5):  # three lines share one timestamp
            await kube.log("web-a", T0 + (i if i < 3 else 2) * SECOND // 10, f"a{i}")
        follower = LogFollower(kube, "sd-web1", SELECTOR)  # type: ignore[arg-type]
        initial = await follower.start(tail=3, resume=None)
        assert [x.text for x in initial] == ["a2", "a3", "a4"]
        cursor_after_initial = encode_cursor(follower.delivered)
        await kube.log("web-a", T0 + SECOND, "a5")
        await kube.log("web-a", T0 + SECOND, "a6")  # same time as a5: ordinal 1
        got, _ = await _lines(follower, 2)
        assert [x.text for x in got] == ["a5", "a6"]
        assert got[1].pos.n == 1
        cursor = follower.delivered_line(got[0])  # the id the client had after "a5"
        follower.close()
        await _settle()
        assert kube.open == 0, "close() must end every follow and watch"

        # Reconnect with the cursor after a5: exactly a6, then live lines; no repeats.
        resumed = LogFollower(kube, "sd-web1", SELECTOR)  # type: ignore[arg-type]
        assert await resumed.start(tail=100, resume=decode_cursor(cursor)) == []
        await kube.log("web-a", T0 + 2 * SECOND, "a7")
        got, _ = await _lines(resumed, 2)
        assert [x.text for x in got] == ["a6", "a7"]

        # A restart: the new pod appears, the old one goes; the stream follows the new one.
        kube.add_pod("web-b", T0 + 3 * SECOND)
        await _settle()
        await kube.log("web-b", T0 + 3 * SECOND, "b0")
        await kube.log("web-a", T0 + 3 * SECOND, "a8")
        kube.delete_pod("web-a")
        await kube.log("web-b", T0 + 4 * SECOND, "b1")
        got, other = await _lines(resumed, 3)
        assert sorted(x.text for x in got) == ["a8", "b0", "b1"]
        assert PodChange("web-b", "added") in other
        # The old pod's source ends (and leaves the cursor) once its log is done.
        deadline = time.monotonic() + 5
        while SourceKey("web-a", "nginx") in resumed.delivered and time.monotonic() < deadline:
            for item in await resumed.next_batch(0.2):
                if isinstance(item, SourceEnded):
                    resumed.source_ended(item.source)
                other.append(item)
        assert SourceKey("web-a", "nginx") not in resumed.delivered
        assert PodChange("web-a", "removed") in other
        assert set(resumed.delivered) == {SourceKey("web-b", "nginx")}
        # The ended pod's lines (still in the hub for late readers) never come again.
        await kube.log("web-b", T0 + 5 * SECOND, "b2")
        got, _ = await _lines(resumed, 1)
        assert [x.text for x in got] == ["b2"]
        assert await resumed.next_batch(0.3) == []
        resumed.close()
        await _settle()
        assert kube.open == 0
        assert open_hubs() == 0 and resumed.hub is not None and resumed.hub.task_count == 0

        # The first cursor still resumes exactly after the initial tail.
        again = LogFollower(kube, "sd-web1", SELECTOR)  # type: ignore[arg-type]
        await again.start(tail=100, resume=decode_cursor(cursor_after_initial))
        got, _ = await _lines(again, 3)  # web-a is gone: only web-b, from its start
        assert [x.text for x in got] == ["b0", "b1", "b2"]
        again.close()

    asyncio.run(scenario())


def test_follower_waits_for_pods_and_starts_new_ones_from_their_beginning() -> None:
    async def scenario() -> None:
        kube = FakeKube()
        follower = LogFollower(kube, "sd-web1", SELECTOR)  # type: ignore[arg-type]
        assert await follower.start(tail=10, resume=None) == []
        assert follower.pods == {}
        kube.add_pod("web-a", T0, started=False)
        await kube.log("web-a", T0 + 1, "early")
        await _settle()
        assert follower.hub is not None and follower.hub.sources == {}  # not started: no log to read yet
        kube.pods["web-a"]["status"]["containerStatuses"][0]["state"] = {"running": {}}
        kube._notify_watch("MODIFIED", kube.pods["web-a"])
        got, other = await _lines(follower, 1)
        assert [x.text for x in got] == ["early"]
        assert other == [PodChange("web-a", "added")]
        follower.close()

    asyncio.run(scenario())


def test_streams_of_one_service_share_the_upstream_and_keep_their_own_cursors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(observe_hub, "HUB_LINES", 4)  # trimmed at 6 lines, to 4

    async def scenario() -> None:
        kube = FakeKube()
        kube.add_pod("web-a", T0)
        for i in range(3):
            await kube.log("web-a", T0 + i * SECOND, f"a{i}")
        first = LogFollower(kube, "sd-web1", SELECTOR)  # type: ignore[arg-type]
        assert [x.text for x in await first.start(tail=1, resume=None)] == ["a2"]
        early_cursor = decode_cursor(encode_cursor(first.delivered))
        second = LogFollower(kube, "sd-web1", SELECTOR)  # type: ignore[arg-type]
        assert [x.text for x in await second.start(tail=2, resume=None)] == ["a1", "a2"]
        assert open_hubs() == 1 and first.hub is second.hub
        for i in range(3, 11):
            await kube.log("web-a", T0 + i * SECOND, f"a{i}")
        await _settle()
        # One follow and one watch for both streams.
        assert kube.follows == 1 and kube.open == 2
        got, _ = await _lines(first, 8)
        assert [x.text for x in got] == [f"a{i}" for i in range(3, 11)]
        got, _ = await _lines(second, 3)
        assert [x.text for x in got] == ["a3", "a4", "a5"]
        # A third stream resumes from long ago: the hub no longer holds those lines (it
        # keeps the last few), so that stream reads them from the cluster, then joins.
        assert first.hub is not None and first.hub.sources[SourceKey("web-a", "nginx")].after is not None
        reads = kube.reads
        late = LogFollower(kube, "sd-web1", SELECTOR)  # type: ignore[arg-type]
        await late.start(tail=100, resume=early_cursor)
        got, _ = await _lines(late, 8)
        assert [x.text for x in got] == [f"a{i}" for i in range(3, 11)]
        assert kube.reads > reads and kube.follows == 1
        got, _ = await _lines(second, 5)
        assert [x.text for x in got] == [f"a{i}" for i in range(6, 11)]
        for f in (first, second):
            f.close()
        await _settle()
        assert open_hubs() == 1 and kube.open == 2  # `late` still follows
        late.close()
        await _settle()
        assert open_hubs() == 0 and kube.open == 0

    asyncio.run(scenario())


# --- the routes -------------------------------------------------------------------------


class App(msgspec.Struct):
    client: TestClient[Litestar]
    kube: FakeKube
    seed: Seed
    headers: dict[str, str]
    sessions: Any


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    settings = Settings.from_env(
        {
            "SHIPSTACK_DATA": str(tmp_path / "data"),
            "SHIPSTACK_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "SHIPSTACK_CACHE": str(tmp_path / "cache"),
            "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
        }
    )
    litestar = build_app(settings, run_operations=False)
    kube = FakeKube()
    with TestClient(litestar) as client:
        context_of(litestar.state).kube = kube
        sessions: sessionmaker[Session] = context_of(litestar.state).db.reads
        seed = Seed(sessions)
        owner = seed.user("owner")
        seed.deployment("web1", owner, status="Ready")
        seed.deployment("pending1", owner, status="Pending", status_message="queued")
        seed.deployment("two", owner, status="Ready")
        with sessions() as db, db.begin():
            db.execute(update(Deployment).where(Deployment.name == "two").values(template="webapp"))
        other = seed.user("other")
        seed.deployment("theirs", other, status="Ready")
        yield App(client=client, kube=kube, seed=seed, headers=bearer(seed.key(owner)), sessions=sessions)


def test_logs_merge_pods_in_time_order_with_prefixes(app: App) -> None:
    app.kube.add_pod("web-a", T0)
    app.kube.add_pod("web-b", T0)

    async def fill() -> None:
        await app.kube.log("web-a", T0 + 1, "a-first")
        await app.kube.log("web-b", T0 + 2, "b-second")
        await app.kube.log("web-a", T0 + 3, "a-third")

    asyncio.run(fill())
    r = app.client.get("/api/deployments/web1/logs", headers=app.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"logs": "[web-a] a-first\n[web-b] b-second\n[web-a] a-third\n"}
    r = app.client.get("/api/deployments/web1/logs?tail=1&service=nginx", headers=app.headers)
    assert r.json() == {"logs": "[web-a] a-third\n"}
    app.kube.delete_pod("web-b")
    assert app.client.get("/api/deployments/web1/logs", headers=app.headers).json() == {"logs": "a-first\na-third\n"}


def test_logs_bounds_services_tenancy_and_scopes(app: App) -> None:
    h = app.headers
    r = app.client.get("/api/deployments/web1/logs?tail=5001", headers=h)
    assert r.status_code == 400 and "tail" in r.json()["error"], r.text
    assert app.client.get("/api/deployments/web1/logs?tail=-1", headers=h).status_code == 400
    assert app.client.get("/api/deployments/web1/logs?tail=5000", headers=h).status_code == 200
    r = app.client.get("/api/deployments/two/logs?service=nope", headers=h)
    assert r.status_code == 400 and r.json()["code"] == "unknown_service"
    assert "app, db" in r.json()["error"]
    for path in ("logs", "logs/stream", "metrics", "events"):
        r = app.client.get(f"/api/deployments/theirs/{path}", headers=h)
        assert r.status_code == 404, (path, r.text)
        assert app.client.get(f"/api/deployments/missing/{path}", headers=h).status_code == 404
        assert app.client.get(f"/api/deployments/web1/{path}").status_code == 401
    with app.sessions() as db:
        from persistence.models import User

        owner = db.query(User).filter_by(name="owner").one()
    write_only = bearer(app.seed.key(owner, scopes=(WRITE,)))
    r = app.client.get("/api/deployments/web1/logs", headers=write_only)
    assert r.status_code == 403 and READ in r.json()["error"]


def test_not_ready_deployment_answers_empty_with_a_status_message(app: App) -> None:
    r = app.client.get("/api/deployments/pending1/logs", headers=app.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["logs"] == ""
    assert "Pending" in body["statusMessage"] and "queued" in body["statusMessage"]
    r = app.client.get("/api/deployments/pending1/events", headers=app.headers)
    assert r.status_code == 200 and r.json()["events"] == [] and "Pending" in r.json()["statusMessage"]
    r = app.client.get("/api/deployments/pending1/metrics", headers=app.headers)
    assert r.status_code == 200
    assert r.json()["cpuUsage"] == "0m" and r.json()["memoryUsage"] == "0Mi" and "Pending" in r.json()["statusMessage"]


def test_unreachable_cluster_is_503(app: App, tmp_path: Path) -> None:
    app.kube.fail = KubeUnavailable(0, "ConnectError", "cluster unreachable: ConnectError")
    for path in ("logs", "logs?follow=true", "logs/stream", "metrics", "events"):
        r = app.client.get(f"/api/deployments/web1/{path}", headers=app.headers)
        assert r.status_code == 503, (path, r.text)
        assert r.json()["code"] == "cluster_unavailable"
    assert open_streams() == 0
    # The real client too: a kubeconfig pointing at a closed port.
    kubeconfig = tmp_path / "closed.kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "current-context: c\n"
    )
    context_of(app.client.app.state).kube = Kube(kubeconfig, timeout=2)
    r = app.client.get("/api/deployments/web1/logs", headers=app.headers)
    assert r.status_code == 503 and r.json()["code"] == "cluster_unavailable", r.text
    context_of(app.client.app.state).kube = Kube(tmp_path / "missing")
    r = app.client.get("/api/deployments/web1/events", headers=app.headers)
    assert r.status_code == 503 and "no kubeconfig" in r.json()["error"]


def test_metrics_sum_pods_and_503_without_a_metrics_api(app: App) -> None:
    app.kube.add_pod("web-a", T0)
    app.kube.add_pod("web-b", T0)
    app.kube.metrics = [
        {
            "metadata": {"name": "web-a"},
            "timestamp": "2025-01-02T03:04:05Z",
            "containers": [{"name": "nginx", "usage": {"cpu": "100m", "memory": "200Mi"}}],
        },
        {
            "metadata": {"name": "web-b"},
            "timestamp": "2025-01-02T03:04:15Z",
            "containers": [{"name": "nginx", "usage": {"cpu": "50000000n", "memory": "57344Ki"}}],
        },
    ]
    r = app.client.get("/api/deployments/web1/metrics", headers=app.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "cpuUsage": "150m",
        "memoryUsage": "256Mi",
        "timestamp": "2025-01-02T03:04:15Z",
        "cpuMillicores": 150,
        "memoryBytes": 256 * 2**20,
        "pods": 2,
    }
    app.kube.metrics = app.kube.metrics[:1]
    body = app.client.get("/api/deployments/web1/metrics", headers=app.headers).json()
    assert body["cpuUsage"] == "100m" and "web-b" in body["statusMessage"]
    app.kube.metrics = KubeNotFound(404, "NotFound", "the server could not find the requested resource")
    r = app.client.get("/api/deployments/web1/metrics", headers=app.headers)
    assert r.status_code == 503 and r.json()["code"] == "metrics_unavailable"
    assert "metrics.k8s.io" in r.json()["error"]


def test_events_newest_first(app: App) -> None:
    def event(name: str, when: str, reason: str, **extra: Any) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": "web-a"},
            "reason": reason,
            "message": f"{reason} happened",
            "type": "Normal",
            "lastTimestamp": when,
            "count": 1,
            **extra,
        }

    app.kube.events = [
        event("e1", "2025-01-02T03:04:05Z", "Scheduled"),
        event("e3", "2025-01-02T03:04:09Z", "Killing", count=3),
        {**event("e2", "", "Started"), "lastTimestamp": None, "eventTime": "2025-01-02T03:04:07.500000Z"},
    ]
    r = app.client.get("/api/deployments/web1/events", headers=app.headers)
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert [e["reason"] for e in events] == ["Killing", "Started", "Scheduled"]
    assert events[0] == {
        "type": "Normal",
        "reason": "Killing",
        "message": "Killing happened",
        "object": {"kind": "Pod", "name": "web-a"},
        "count": 3,
        "time": "2025-01-02T03:04:09Z",
    }
    assert [
        e["reason"]
        for e in app.client.get("/api/deployments/web1/events?limit=1", headers=app.headers).json()["events"]
    ] == ["Killing"]
    assert app.client.get("/api/deployments/web1/events?limit=0", headers=app.headers).status_code == 400
    assert msgspec.convert(app.kube.events[0], Event).occurrences == 1


# --- operation progress -------------------------------------------------------------------


def _events(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if "data" in fields:
            out.append(fields)
    return out


def _operation(app: App, deployment: str = "web1") -> str:
    with app.sessions() as db, db.begin():
        return ops.enqueue(db, deployment, "restart", {}, "restart").id


def test_operation_events_of_a_finished_operation_replay_and_end(app: App) -> None:
    op_id = _operation(app)
    progress = [
        {"sequence": 1, "type": "step", "op": "update", "resource": "kubernetes:apps/v1:Deployment", "urn": "u"},
        {"sequence": 2, "type": "summary", "changes": {"update": 1}},
    ]
    with app.sessions() as db, db.begin():
        ops.claim_next(db, "test", "token-1")
        ops.finish(db, op_id, "token-1", ok=True, message="restart", result={"changed": True}, progress=progress)
    r = app.client.get(f"/api/operations/{op_id}/events", headers=app.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    assert [(e.get("event"), e.get("id")) for e in events] == [("step", "1"), ("summary", "2"), ("end", "end")]
    assert msgspec.json.decode(events[-1]["data"]) == {
        "status": "succeeded",
        "message": "restart",
        "result": {"changed": True},
    }
    resumed = app.client.get(f"/api/operations/{op_id}/events", headers={**app.headers, "Last-Event-ID": "1"})
    assert [e.get("event") for e in _events(resumed.text)] == ["summary", "end"]
    assert app.client.get("/api/operations/nope/events", headers=app.headers).status_code == 404
    theirs = _operation(app, "theirs")
    assert app.client.get(f"/api/operations/{theirs}/events", headers=app.headers).status_code == 404


class FakeRunner(Runner):
    """A runner without workers whose progress events the test publishes (the route's
    dependency is typed `Runner`)."""

    def __init__(self) -> None:  # no super().__init__: nothing of a real runner is used
        self.listeners: dict[str, list[Any]] = {}
        self.lock = threading.Lock()

    def subscribe(self, op_id: str) -> Any:
        import queue

        q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        with self.lock:
            self.listeners.setdefault(op_id, []).append(q)
        return q

    def unsubscribe(self, op_id: str, q: Any) -> None:
        with self.lock:
            if q in self.listeners.get(op_id, []):
                self.listeners[op_id].remove(q)

    def publish(self, op_id: str, item: Any) -> None:
        with self.lock:
            queues = list(self.listeners.get(op_id, []))
        for q in queues:
            q.put(item)


def test_operation_events_live_then_end(app: App) -> None:
    runner = FakeRunner()
    context_of(app.client.app.state).runner = runner
    op_id = _operation(app)
    stored = [{"sequence": 1, "type": "step", "op": "update", "resource": "r", "urn": "u"}]
    with app.sessions() as db, db.begin():
        ops.claim_next(db, "test", "token-1")
        ops.save_progress(db, op_id, "token-1", stored)

    def run() -> None:
        while not runner.listeners.get(op_id):
            time.sleep(0.05)
        runner.publish(op_id, stored[0])  # already stored: must not repeat
        time.sleep(0.3)
        runner.publish(op_id, {"sequence": 2, "type": "diagnostic", "severity": "info", "message": "hi", "urn": ""})
        runner.publish(op_id, {"sequence": 3, "type": "summary", "changes": {}})
        with app.sessions() as db, db.begin():
            ops.finish(db, op_id, "token-1", ok=False, message="restart failed", error="boom")
        runner.publish(op_id, None)

    thread = threading.Thread(target=run)
    thread.start()
    r = app.client.get(f"/api/operations/{op_id}/events", headers=app.headers)
    thread.join()
    events = _events(r.text)
    assert [e.get("id") for e in events] == ["1", "2", "3", "end"]
    assert msgspec.json.decode(events[-1]["data"]) == {"status": "failed", "message": "restart failed", "error": "boom"}
    assert runner.listeners[op_id] == []


def test_openapi_documents_the_routes(app: App) -> None:
    paths = app.client.get("/api/openapi.json").json()["paths"]
    stream = paths["/api/deployments/{name}/logs/stream"]["get"]
    assert {p["name"] for p in stream["parameters"]} >= {"service", "tail", "Last-Event-ID"}
    assert {"200", "400", "404", "503"} <= set(stream["responses"])
    for path in ("logs", "metrics", "events"):
        assert f"/api/deployments/{{name}}/{path}" in paths
    assert "/api/operations/{op_id}/events" in paths


def test_an_operation_stream_ends_once_its_key_is_revoked(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Authorized when it opens, and again every RECHECK_S: a key revoked meanwhile
    ends the stream with `gone` (the operation itself never finishes here)."""
    monkeypatch.setattr(operation_stream, "RECHECK_S", 0.2)
    monkeypatch.setattr(operation_stream, "DB_POLL_S", 0.2)
    owner = app.seed.user("streamer")
    app.seed.deployment("streamed", owner, status="Ready")
    key = app.seed.key(owner)
    op_id = _operation(app, "streamed")
    revoked = threading.Event()

    def revoke_then_give_up() -> None:
        time.sleep(0.5)  # the stream is open and authorized by now
        with app.sessions() as db, db.begin():
            db.execute(update(ApiKey).where(ApiKey.prefix == key_prefix(key)).values(revoked_at=utcnow()))
        revoked.set()
        time.sleep(10)  # were the stream to go on, end the operation so the test fails rather than hangs
        with app.sessions() as db, db.begin():
            ops.claim_next(db, "test", "token-1")
            ops.finish(db, op_id, "token-1", ok=True, message="restart")

    thread = threading.Thread(target=revoke_then_give_up, daemon=True)
    thread.start()
    started = time.monotonic()
    r = app.client.get(f"/api/operations/{op_id}/events", headers=bearer(key))
    ended_after = time.monotonic() - started
    assert revoked.is_set()
    end = _events(r.text)[-1]
    assert end["event"] == "end"
    assert msgspec.json.decode(end["data"])["status"] == "gone", end
    assert ended_after < 5
