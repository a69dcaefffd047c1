"""Observing a real deployment on the local cluster, through the real service:
the progress events of its `up` as SSE, kwok's simulated container log (a line
every 2 s, `request=N` counting up) as JSON, as a followed text stream and as an
SSE stream resumed with Last-Event-ID, a stream that follows the pod a restart
creates, Kubernetes events after the create and the restart, and metrics from
metrics.k8s.io.

Streaming responses need a real HTTP server (Litestar's TestClient buffers whole
responses), so the service fixture's app is also served by uvicorn on a free
port for these tests (same app, same database and runner)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import httpx
import msgspec
import pytest
import yaml
from kubernetes import client, config

from api.observe import routes as observe_routes
from api.observe.formats import parse_time_ns
from api.observe.hub import open_hubs
from api.observe.streams import open_streams
from tests.integration.conftest import Service
from tests.serving import serve
from tests.waiting import wait_until

LINE = re.compile(r'127\.0\.0\.1 - - "GET /healthz HTTP/1\.1" 200 2 request=(\d+)')


# --- helpers ----------------------------------------------------------------------------


@contextmanager
def live_server(service: Service) -> Iterator[str]:
    """The fixture's app (already started by its TestClient) served over real HTTP."""
    yield from serve(service.client.app, lifespan="off")


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """Parsed SSE events; a heartbeat comment comes through as {"comment": ...}."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:  # a block with only `retry:` is no event
                yield fields
            fields = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            key, _, value = line.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value


@asynccontextmanager
async def open_sse(
    http: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> AsyncIterator[AsyncIterator[dict[str, str]]]:
    async with http.stream("GET", path, headers={**headers, "Accept": "text/event-stream"}) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield sse_events(response)


async def next_lines(events: AsyncIterator[dict[str, str]], count: int, timeout: float, seen: list | None = None):
    """The next `count` log-line events (others are appended to `seen`)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async for event in events:
            if "data" in event and "event" not in event:
                out.append({"id": event.get("id"), **msgspec.json.decode(event["data"])})
                if len(out) == count:
                    return out
            elif seen is not None:
                seen.append(event)
    raise AssertionError(f"the stream ended after {len(out)} lines")


def request_number(text: str) -> int:
    m = LINE.search(text)
    assert m, f"not a kwok log line: {text!r}"
    return int(m.group(1))


def kube_api(service: Service) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(service.settings.engine.kubeconfig))


def apiserver_port(service: Service) -> int:
    kubeconfig = yaml.safe_load(service.settings.engine.kubeconfig.read_text())  # type: ignore[union-attr]
    return urlparse(kubeconfig["clusters"][0]["cluster"]["server"]).port or 443


def connections_to(port: int) -> int:
    """ESTABLISHED TCP connections this process holds to 127.0.0.1:`port`."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]  # noqa: SIM115
        except OSError:
            continue
        for row in rows:
            parts = row.split()
            remote_port = int(parts[2].rsplit(":", 1)[1], 16)
            if remote_port == port and parts[3] == "01" and parts[9] in inodes:
                count += 1
    return count


# --- the test -----------------------------------------------------------------------------


def test_observe_a_deployment(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observe_routes, "HEARTBEAT_S", 1.0)
    c, h = service.client, service.headers
    with live_server(service) as base:
        r = c.post("/api/deployments", json={"template": "nginx"}, headers=h)
        assert r.status_code == 201, r.text
        name, op_id = r.json()["name"], r.json()["operationId"]

        # Before it exists in the cluster: answers, not errors.
        r = c.get(f"/api/deployments/{name}/logs", headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["logs"] == "" or r.json()["logs"].strip(), r.json()
        if r.json()["logs"] == "":
            assert r.json()["statusMessage"]
        r = c.get(f"/api/deployments/{name}/logs?service=postgres", headers=h)
        assert r.status_code == 400 and r.json() == {
            "error": f"Unknown service 'postgres'; services of '{name}': nginx",
            "code": "unknown_service",
        }

        asyncio.run(_operation_progress(base, h, op_id, c))
        assert service.wait_status(name, {"Ready", "Error"})["status"] == "Ready"

        # Real pod log lines from kwok.
        r = c.get(f"/api/deployments/{name}/logs?tail=5", headers=h)
        assert r.status_code == 200, r.text
        lines = r.json()["logs"].splitlines()
        assert len(lines) == 5, r.json()
        numbers = [request_number(x) for x in lines]
        assert numbers == sorted(numbers) and not lines[0].startswith("[")  # one pod: no prefix
        assert "statusMessage" not in r.json()
        assert c.get(f"/api/deployments/{name}/logs?tail=0", headers=h).json() == {"logs": ""}
        assert c.get(f"/api/deployments/{name}/logs?tail=5001", headers=h).status_code == 400

        asyncio.run(_follow_and_resume(base, h, name, apiserver_port(service)))
        # Every client stream, and the shared watch and follows behind them, is gone.
        wait_until("the streams to close", lambda: open_streams() == 0 and open_hubs() == 0, 10)

        # A restart replaces the pod; an open stream moves on to the new one.
        restart_at = time.time()
        asyncio.run(_stream_follows_restart(base, h, name, c, service))
        wait_until("the streams to close", lambda: open_streams() == 0 and open_hubs() == 0, 10)

        _events_after_create_and_restart(c, h, name, restart_at)
        _metrics(c, h, name, service)

        r = c.post("/api/deployments/delete", json={"deployment_name": name}, headers=h)
        assert r.status_code == 200
        assert service.wait_status(name, {"Gone"}) == {"status": "Gone"}
        assert c.get(f"/api/deployments/{name}/logs", headers=h).status_code == 404


async def _operation_progress(base: str, h: dict[str, str], op_id: str, c: Any) -> None:
    """The create's engine events arrive live, while the operation runs, then `end`."""
    events: list[tuple[float, dict[str, str]]] = []
    async with (
        httpx.AsyncClient(base_url=base, timeout=None) as http,
        open_sse(http, f"/api/operations/{op_id}/events", h) as stream,
        asyncio.timeout(300),
    ):
        async for event in stream:
            if "data" in event:
                events.append((time.time(), event))
                if event.get("event") == "end":
                    break
    kinds = [e.get("event") for _, e in events]
    assert kinds[-1] == "end", kinds
    end = msgspec.json.decode(events[-1][1]["data"])
    assert end["status"] == "succeeded", end
    steps = [msgspec.json.decode(e["data"]) for _, e in events if e.get("event") == "step"]
    resources = {s["resource"] for s in steps}
    assert {"kubernetes:core/v1:Namespace", "kubernetes:apps/v1:Deployment"} <= resources, resources
    assert "summary" in kinds and "done" in kinds
    ids = [int(e["id"]) for _, e in events if e.get("event") != "end"]
    assert ids == sorted(set(ids)), "ids are the engine's increasing sequence numbers"
    # Live: the first event reached the client well before the operation finished.
    finished = datetime.fromisoformat(c.get(f"/api/operations/{op_id}", headers=h).json()["finishedAt"])
    finished = finished if finished.tzinfo else finished.replace(tzinfo=UTC)
    assert events[0][0] < finished.timestamp() - 1, "progress only arrived once the operation was over"
    # Replayed from the database once finished, resumable after any id.
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        r = await http.get(f"/api/operations/{op_id}/events", headers={**h, "Last-Event-ID": str(ids[-2])})
    replay = [line for line in r.text.splitlines() if line.startswith("id: ")]
    assert replay == [f"id: {ids[-1]}", "id: end"]
    # Secrets never appear: the kubeconfig and env values are Pulumi secrets.
    assert "client-key-data" not in r.text and "BEGIN" not in r.text


async def _follow_and_resume(base: str, h: dict[str, str], name: str, port: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30, read=60)) as http:
        # follow=true: text that keeps coming.
        async with http.stream("GET", f"/api/deployments/{name}/logs?tail=2&follow=true", headers=h) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            got: list[int] = []
            async with asyncio.timeout(20):
                async for line in r.aiter_lines():
                    got.append(request_number(line))
                    if len(got) == 3:
                        break
            assert got[2] == got[1] + 1 and got[1] == got[0] + 1, got  # the third is a new line
        # SSE: read a few lines, leave, come back with Last-Event-ID: no gap, no repeat.
        async with open_sse(http, f"/api/deployments/{name}/logs/stream?tail=2", h) as events:
            first = await next_lines(events, 3, 20)
        assert all(e["id"].startswith("1;") and e["pod"] in e["id"] for e in first)
        numbers = [request_number(e["line"]) for e in first]
        assert numbers[1:] == [numbers[0] + 1, numbers[0] + 2], numbers
        await asyncio.sleep(5)  # lines written while nobody listens must still come
        resume = {**h, "Last-Event-ID": first[-1]["id"]}
        seen: list[dict[str, str]] = []
        async with open_sse(http, f"/api/deployments/{name}/logs/stream", resume) as events:
            again = await next_lines(events, 4, 20, seen)
        assert [request_number(e["line"]) for e in again] == [numbers[-1] + i for i in range(1, 5)]
        # Heartbeats while idle (HEARTBEAT_S is 1 s here): comments between the lines.
        async with open_sse(http, f"/api/deployments/{name}/logs/stream?tail=0", h) as events:
            comments = 0
            async with asyncio.timeout(10):
                async for event in events:
                    comments += "comment" in event
                    if comments >= 2:
                        break
            assert open_streams() == 1 and open_hubs() == 1
            during = connections_to(port)
        # Leaving closes the stream's pod watch and log follow (its two API server connections).
        async with asyncio.timeout(10):
            while connections_to(port) > during - 2 or open_hubs():
                await asyncio.sleep(0.2)
        # A Last-Event-ID that is not ours starts over, and says so.
        async with open_sse(http, f"/api/deployments/{name}/logs/stream?tail=1", {**h, "Last-Event-ID": "x"}) as ev:
            status = await anext(ev)
            assert status.get("event") == "status" and "not understood" in status["data"]
            assert len(await next_lines(ev, 1, 10)) == 1


async def _stream_follows_restart(base: str, h: dict[str, str], name: str, c: Any, service: Service) -> None:
    """A restart rolls the pod (perhaps through more than one ReplicaSet while Pulumi
    applies it); the open stream ends up on the pod that runs when it is over."""
    seen: list[dict[str, Any]] = []

    async def collect(events: AsyncIterator[dict[str, str]]) -> None:
        async for event in events:
            if "data" in event:
                data = msgspec.json.decode(event["data"])
                seen.append({"event": event.get("event", "line"), "id": event.get("id"), **data})

    def lines_of(pod: str) -> list[dict[str, Any]]:
        return [e for e in seen if e["event"] == "line" and e["pod"] == pod]

    async def until(check: Any, timeout: float, what: str) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.2)

    async with (
        httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30, read=60)) as http,
        open_sse(http, f"/api/deployments/{name}/logs/stream?tail=1", h) as events,
    ):
        collector = asyncio.create_task(collect(events))
        try:
            await until(lambda: any(e["event"] == "line" for e in seen), 20, "a first line")
            old_pod = seen[0]["pod"]
            r = await http.post("/api/deployments/restart", json={"deployment_name": name}, headers=h)
            assert r.status_code == 200, r.text
            op_id = r.json()["operationId"]
            async with asyncio.timeout(300):
                while (op := (await http.get(f"/api/operations/{op_id}", headers=h)).json())["status"] not in (
                    "succeeded",
                    "failed",
                ):
                    await asyncio.sleep(1)
            assert op["status"] == "succeeded", op
            pods = client.CoreV1Api(kube_api(service)).list_namespaced_pod(f"sd-{name}").items
            running = [p.metadata.name for p in pods if p.metadata.deletion_timestamp is None]
            assert len(running) == 1 and running[0] != old_pod, running
            new_pod = running[0]
            removed = {"event": "pod", "id": None, "pod": old_pod, "state": "removed"}
            added = {"event": "pod", "id": None, "pod": new_pod, "state": "added"}
            # The old pod leaves the stream (and its cursor) once it is gone; the new
            # one joins, and its lines keep coming.
            await until(lambda: removed in seen and added in seen and len(lines_of(new_pod)) >= 2, 60, "the new pod")
            # Lines sent in the same batch as the removal still carry the old cursor;
            # the first line after it must not.
            after_removal = lambda: [e for e in seen[seen.index(removed) :] if e["event"] == "line"]  # noqa: E731
            await until(lambda: bool(after_removal()), 60, "a line after the old pod left")
            last = after_removal()[-1]
            assert last["pod"] != old_pod and new_pod in last["id"] and old_pod not in last["id"]
            numbers = [request_number(e["line"]) for e in lines_of(new_pod)]
            assert numbers == sorted(set(numbers)), "no line of the new pod twice, in order"
        finally:
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)


def _events_after_create_and_restart(c: Any, h: dict[str, str], name: str, restart_at: float) -> None:
    def fetch() -> list[dict[str, Any]]:
        r = c.get(f"/api/deployments/{name}/events", headers=h)
        assert r.status_code == 200, r.text
        return r.json()["events"]

    def has_restart_events() -> list[dict[str, Any]] | None:
        events = fetch()
        scaled = [
            e
            for e in events
            if e["reason"] == "ScalingReplicaSet"
            and e["object"] == {"kind": "Deployment", "name": "nginx"}
            and (parse_time_ns(e["time"]) or 0) / 1e9 >= restart_at - 1
        ]
        return events if scaled else None

    events = wait_until("the restart's ScalingReplicaSet event", has_restart_events, 30)
    times = [parse_time_ns(e["time"]) or 0 for e in events]
    assert times == sorted(times, reverse=True), "newest first"
    reasons = {e["reason"] for e in events}
    # The create: the Deployment scaled a ReplicaSet up, which created a pod, which was scheduled.
    assert {"ScalingReplicaSet", "SuccessfulCreate", "Scheduled"} <= reasons, reasons
    # The restart: a second ReplicaSet, and the old pod deleted.
    replica_sets = {e["object"]["name"] for e in events if e["object"]["kind"] == "ReplicaSet"}
    assert len(replica_sets) >= 2, events
    assert "SuccessfulDelete" in reasons, reasons
    for e in events:
        assert set(e) >= {"type", "reason", "message", "object", "count", "time"}
        assert e["type"] in ("Normal", "Warning") and e["count"] >= 1


def _metrics(c: Any, h: dict[str, str], name: str, service: Service) -> None:
    """Real usage from metrics.k8s.io when the cluster serves it (the local cluster's
    metrics-server does, some 30-60 s after a pod starts); else the 503, and only if
    the cluster's metrics APIService really is unavailable."""
    body: dict[str, Any] = {}
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        r = c.get(f"/api/deployments/{name}/metrics", headers=h)
        body = r.json()
        assert r.status_code in (200, 503), r.text
        if r.status_code == 200 and body["pods"] >= 1:
            break
        if r.status_code == 503:
            assert body["code"] == "metrics_unavailable" and "metrics.k8s.io" in body["error"], body
        time.sleep(3)
    if "code" in body:
        registration = client.ApiregistrationV1Api(kube_api(service)).read_api_service("v1beta1.metrics.k8s.io")
        conditions = registration.status.conditions or []
        assert not any(x.type == "Available" and x.status == "True" for x in conditions), body
        print(f"metrics: the local cluster served no metrics.k8s.io; checked the 503 instead: {body}")
        return
    # kwok's simulated usage for one container without annotations: 15m CPU, 32Mi memory.
    assert body["cpuUsage"] == "15m" and body["memoryUsage"] == "32Mi", body
    assert body["cpuMillicores"] == 15 and body["memoryBytes"] == 32 * 2**20
    assert parse_time_ns(body["timestamp"]) is not None
    assert "statusMessage" not in body
    print(f"metrics: from metrics.k8s.io: {body}")
