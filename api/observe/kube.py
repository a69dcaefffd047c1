"""A small, read-only Kubernetes access layer for the observe routes (logs,
metrics, events), built from `settings.engine.kubeconfig`.

Why not the `kubernetes` package's client for the requests themselves: its calls
block, and a followed log or a watch would hold one worker thread for as long as
a user keeps a log stream open (anyio's default pool has 40 threads, shared with
every database call). So the kubeconfig is read with the `kubernetes` package
(every auth flavour: client certificates, tokens, exec plugins) once, in a worker
thread, and the requests go through one `httpx.AsyncClient` per event loop:
non-blocking, and a stream costs a socket and a coroutine, not a thread.

Responses are decoded into the Structs of `api.observe.kube_models`.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import httpx
import msgspec

from api.observe.kube_models import (
    EventList,
    KubeError,
    KubeUnavailable,
    PodList,
    PodMetricsList,
    error_from_response,
)

T = TypeVar("T")

REQUEST_TIMEOUT_S = 10.0
# A followed log of a quiet pod sends nothing for hours; a read that long stalls on
# a half-open connection would never notice. Callers re-open after this (resuming
# from their cursor), which costs one request per idle stream per period.
STREAM_IDLE_TIMEOUT_S = 300.0
WATCH_TIMEOUT_S = 240  # the API server ends a watch after this; callers re-watch
MAX_LINE_BYTES = 64 * 1024  # longer log lines are cut (a stream's memory is bounded)


class _Conn(msgspec.Struct):
    host: str
    ssl_context: ssl.SSLContext
    server_name: str | None
    configuration: Any  # kubernetes.client.Configuration (token refresh hooks live there)


def _load(kubeconfig: Path | None) -> _Conn:
    """Reads the kubeconfig (blocking: file IO, maybe an exec plugin). In a worker thread."""
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        if kubeconfig is not None and kubeconfig.exists():
            config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg, persist_config=False)
        elif kubeconfig is None:
            config.load_incluster_config(client_configuration=cfg)
        else:
            raise KubeUnavailable(0, "NoKubeconfig", f"no kubeconfig at {kubeconfig}")
    except KubeUnavailable:
        raise
    except Exception as exc:  # the kubernetes package raises many kinds here
        raise KubeUnavailable(0, "BadKubeconfig", f"cannot use the kubeconfig: {type(exc).__name__}") from None
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return _Conn(host=cfg.host.rstrip("/"), ssl_context=ctx, server_name=cfg.tls_server_name, configuration=cfg)


async def _lines(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body split on b"\\n" only (a log line may hold a bare \\r), each line at most MAX_LINE_BYTES."""
    buffer = b""
    async for chunk in response.aiter_raw():
        buffer += chunk
        while True:
            cut = buffer.find(b"\n")
            if cut < 0:
                if len(buffer) > MAX_LINE_BYTES:
                    yield buffer[:MAX_LINE_BYTES]
                    buffer = b""
                break
            line, buffer = buffer[:cut], buffer[cut + 1 :]
            yield line[:MAX_LINE_BYTES]
    if buffer:
        yield buffer[:MAX_LINE_BYTES]


class Kube:
    """Read access to one cluster. Safe to share between requests and event loops."""

    def __init__(self, kubeconfig: Path | None, *, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.kubeconfig = kubeconfig
        self.timeout = timeout
        self._conn: _Conn | None = None
        self._load_lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    # --- plumbing ------------------------------------------------------------

    def _load_once(self) -> _Conn:
        with self._load_lock:
            if self._conn is None:
                self._conn = _load(self.kubeconfig)
            return self._conn

    async def _connection(self) -> _Conn:
        if self._conn is not None:
            return self._conn
        return await anyio.to_thread.run_sync(self._load_once)

    async def _client(self) -> tuple[_Conn, httpx.AsyncClient]:
        conn = await self._connection()
        loop = asyncio.get_running_loop()
        http = self._clients.get(loop)
        if http is None:
            http = httpx.AsyncClient(
                base_url=conn.host,
                verify=conn.ssl_context,
                timeout=self.timeout,
                # Each followed log or watch holds a connection: no pool ceiling.
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
                trust_env=False,
            )
            self._clients[loop] = http
        return conn, http

    async def _headers(self, conn: _Conn) -> dict[str, str]:
        cfg = conn.configuration
        if cfg.refresh_api_key_hook is not None:  # exec plugins / expiring tokens
            await anyio.to_thread.run_sync(cfg.refresh_api_key_hook, cfg)
        token = cfg.get_api_key_with_prefix("authorization")
        return {"Authorization": token, "Accept": "application/json"} if token else {"Accept": "application/json"}

    async def aclose(self) -> None:
        """Closes this event loop's connections (call from the app's shutdown)."""
        http = self._clients.pop(asyncio.get_running_loop(), None)
        if http is not None:
            await http.aclose()

    async def _get(self, path: str, params: dict[str, Any], type: type[T]) -> T:
        conn, http = await self._client()
        extensions = {"sni_hostname": conn.server_name} if conn.server_name else None
        try:
            response = await http.get(path, params=params, headers=await self._headers(conn), extensions=extensions)
        except httpx.TransportError as exc:
            raise KubeUnavailable(0, type_name(exc), f"cluster unreachable: {type_name(exc)}") from None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content)
        if type is bytes:
            return response.content  # type: ignore[return-value]
        try:
            return msgspec.json.decode(response.content, type=type)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise KubeError(response.status_code, "BadResponse", f"unexpected answer from the cluster: {exc}") from None

    @asynccontextmanager
    async def _stream(
        self, path: str, params: dict[str, Any], *, idle_timeout: float | None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        conn, http = await self._client()
        request = http.build_request(
            "GET",
            path,
            params=params,
            headers=await self._headers(conn),
            timeout=httpx.Timeout(self.timeout, read=idle_timeout),
            extensions={"sni_hostname": conn.server_name} if conn.server_name else None,
        )
        try:
            response = await http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise KubeUnavailable(0, type_name(exc), f"cluster unreachable: {type_name(exc)}") from None
        try:
            if response.status_code >= 400:
                raise error_from_response(response.status_code, await response.aread())
            yield _lines(response)
        except httpx.TransportError as exc:  # mid-stream: a dropped connection or an idle timeout
            raise KubeUnavailable(0, type_name(exc), f"stream interrupted: {type_name(exc)}") from None
        finally:
            await response.aclose()

    # --- reads ---------------------------------------------------------------

    async def list_pods(self, namespace: str, selector: str) -> PodList:
        return await self._get(f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": selector}, PodList)

    def watch_pods(
        self, namespace: str, selector: str, resource_version: str
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Raw watch lines (decode with `decode_watch_event`); the server ends it after WATCH_TIMEOUT_S."""
        params = {
            "labelSelector": selector,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_S),
        }
        return self._stream(f"/api/v1/namespaces/{namespace}/pods", params, idle_timeout=WATCH_TIMEOUT_S + self.timeout)

    @staticmethod
    def _log_params(
        container: str, *, tail: int | None, since_time: str | None, timestamps: bool, limit_bytes: int | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"container": container, "timestamps": "true" if timestamps else "false"}
        if tail is not None:
            params["tailLines"] = str(tail)
        if since_time is not None:
            params["sinceTime"] = since_time
        if limit_bytes is not None:
            params["limitBytes"] = str(limit_bytes)
        return params

    async def read_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        tail: int | None = None,
        since_time: str | None = None,
        timestamps: bool = True,
        limit_bytes: int | None = None,
    ) -> bytes:
        params = self._log_params(
            container, tail=tail, since_time=since_time, timestamps=timestamps, limit_bytes=limit_bytes
        )
        return await self._get(f"/api/v1/namespaces/{namespace}/pods/{pod}/log", params, bytes)

    def follow_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        tail: int | None = None,
        since_time: str | None = None,
        timestamps: bool = True,
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """`async with kube.follow_log(...) as lines: async for line in lines` until the container stops."""
        params = self._log_params(container, tail=tail, since_time=since_time, timestamps=timestamps, limit_bytes=None)
        params["follow"] = "true"
        return self._stream(
            f"/api/v1/namespaces/{namespace}/pods/{pod}/log", params, idle_timeout=STREAM_IDLE_TIMEOUT_S
        )

    async def list_events(self, namespace: str) -> EventList:
        return await self._get(f"/api/v1/namespaces/{namespace}/events", {}, EventList)

    async def pod_metrics(self, namespace: str, selector: str) -> PodMetricsList:
        """metrics.k8s.io PodMetrics; KubeNotFound/KubeUnavailable when the cluster has no metrics API."""
        return await self._get(
            f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods", {"labelSelector": selector}, PodMetricsList
        )


def type_name(exc: BaseException) -> str:
    return type(exc).__name__
