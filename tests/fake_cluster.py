"""A stand-in for the Kubernetes API (`api.observe.kube.Kube`) for tests that would
otherwise need a cluster: pods, their logs, a pod watch, events and metrics, kept in
memory and served the way the API server serves them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from api.observe.formats import format_time_ns, parse_time_ns
from api.observe.kube_models import EventList, KubeNotFound, PodList, PodMetricsList


class FakeKube:
    """Pods, their logs, a pod watch, events and metrics, served like the API server does
    (sinceTime in whole seconds, tailLines, follow until the pod is deleted)."""

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], list[tuple[int, str]]] = {}
        self.changed = asyncio.Condition()
        self.watchers: list[asyncio.Queue[bytes]] = []
        self.rv = 1
        self.open = 0  # follows and watches currently open
        self.follows = 0  # follows opened so far
        self.reads = 0  # non-follow log reads so far
        self.events: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] | Exception = []
        self.fail: Exception | None = None

    # --- test controls -----------------------------------------------------------

    def add_pod(self, name: str, created_ns: int, *, started: bool = True, containers: tuple[str, ...] = ("nginx",)):
        self.rv += 1
        state = {"running": {"startedAt": format_time_ns(created_ns)}} if started else {"waiting": {"reason": "X"}}
        pod = {
            "metadata": {
                "name": name,
                "resourceVersion": str(self.rv),
                "creationTimestamp": format_time_ns(created_ns, fraction=False),
            },
            "spec": {"containers": [{"name": c} for c in containers]},
            "status": {"phase": "Running", "containerStatuses": [{"name": c, "state": state} for c in containers]},
        }
        self.pods[name] = pod
        for c in containers:
            self.logs.setdefault((name, c), [])
        self._notify_watch("ADDED", pod)

    def delete_pod(self, name: str) -> None:
        self.rv += 1
        pod = self.pods.pop(name)
        self._notify_watch("DELETED", pod)

    async def log(self, pod: str, ts: int, text: str, container: str = "nginx") -> None:
        self.logs[(pod, container)].append((ts, text))
        async with self.changed:
            self.changed.notify_all()

    def _notify_watch(self, kind: str, pod: dict[str, Any]) -> None:
        raw = msgspec.json.encode({"type": kind, "object": pod})
        for q in self.watchers:
            q.put_nowait(raw)

    # --- the Kube interface ------------------------------------------------------

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    async def list_pods(self, namespace: str, selector: str) -> PodList:
        self._check()
        body = {"metadata": {"resourceVersion": str(self.rv)}, "items": list(self.pods.values())}
        return msgspec.json.decode(msgspec.json.encode(body), type=PodList)

    @staticmethod
    def _format(lines: list[tuple[int, str]]) -> bytes:
        return b"".join(f"{format_time_ns(ts)} {text}\n".encode() for ts, text in lines)

    async def read_log(self, namespace: str, pod: str, container: str, *, tail=None, since_time=None, **_: Any):
        self._check()
        self.reads += 1
        if pod not in self.pods:
            raise KubeNotFound(404, "NotFound", f"pods {pod!r} not found")
        since = parse_time_ns(since_time) if since_time else None
        lines = [x for x in self.logs[(pod, container)] if since is None or x[0] >= since]
        return self._format(lines[-tail:] if tail else lines)

    @asynccontextmanager
    async def follow_log(
        self, namespace: str, pod: str, container: str, *, since_time: str | None = None, **_: Any
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        self._check()
        if pod not in self.pods:
            raise KubeNotFound(404, "NotFound", f"pods {pod!r} not found")
        since = parse_time_ns(since_time) if since_time else None

        async def lines() -> AsyncIterator[bytes]:
            sent = 0
            while True:
                entries = self.logs[(pod, container)]
                while sent < len(entries):
                    ts, text = entries[sent]
                    sent += 1
                    if since is None or ts >= since:
                        yield f"{format_time_ns(ts)} {text}".encode()
                if pod not in self.pods:
                    return
                async with self.changed:
                    await self.changed.wait()

        self.open += 1
        self.follows += 1
        try:
            yield lines()
        finally:
            self.open -= 1

    @asynccontextmanager
    async def watch_pods(self, namespace: str, selector: str, rv: str) -> AsyncIterator[AsyncIterator[bytes]]:
        self._check()
        q: asyncio.Queue[bytes] = asyncio.Queue()
        self.watchers.append(q)

        async def lines() -> AsyncIterator[bytes]:
            while True:
                raw = await q.get()
                yield raw
                # a deleted pod's followers must see the end of their log
                async with self.changed:
                    self.changed.notify_all()

        self.open += 1
        try:
            yield lines()
        finally:
            self.open -= 1
            self.watchers.remove(q)

    async def list_events(self, namespace: str) -> EventList:
        self._check()
        return msgspec.convert({"items": self.events}, EventList)

    async def pod_metrics(self, namespace: str, selector: str) -> PodMetricsList:
        self._check()
        if isinstance(self.metrics, Exception):
            raise self.metrics
        return msgspec.convert({"items": self.metrics}, PodMetricsList)

    async def aclose(self) -> None:
        pass
