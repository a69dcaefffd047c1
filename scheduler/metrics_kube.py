"""What the metrics sampler reads from the cluster, with the `kubernetes` package's
synchronous client (the sampler runs in scheduler threads, not on an event loop).

One deployment costs two list requests per interval, both in its own namespace and
for all of its services at once: the metrics.k8s.io PodMetrics (CPU and memory)
and the core pods (which service each pod belongs to, and its containers' restart
counts). Bodies are decoded with msgspec into the few fields used, never into the
package's generated models.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")
METRICS_GROUP, METRICS_VERSION = "metrics.k8s.io", "v1beta1"


class ClusterUnreachable(Exception):
    """The API server did not answer (or refused): this deployment is not measured this run."""


class MetricsApiMissing(Exception):
    """The cluster serves no metrics.k8s.io (no metrics-server, or it is down): nothing is measured."""


class _Meta(msgspec.Struct, rename="camel"):
    name: str = ""
    labels: dict[str, str] = {}
    deletion_timestamp: str | None = None


class _ContainerUsage(msgspec.Struct):
    usage: dict[str, str] = {}


class _PodMetrics(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    containers: list[_ContainerUsage] = []


class _ContainerStatus(msgspec.Struct, rename="camel"):
    restart_count: int = 0


class _PodStatus(msgspec.Struct, rename="camel"):
    container_statuses: list[_ContainerStatus] = []


class _Pod(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    status: _PodStatus = msgspec.field(default_factory=_PodStatus)


class _List(msgspec.Struct, Generic[T]):
    items: list[T] = []


class PodUsage(msgspec.Struct, frozen=True):
    pod: str
    labels: dict[str, str]
    cpu_millicores: float
    memory_bytes: int


class PodState(msgspec.Struct, frozen=True):
    pod: str
    labels: dict[str, str]
    restarts: int  # container restarts of the pod, all containers
    terminating: bool


class Reading(msgspec.Struct, frozen=True):
    """One namespace at one moment: usage of the measured pods, and every pod."""

    usage: list[PodUsage]
    pods: list[PodState]


def usage_of(item: _PodMetrics) -> PodUsage:
    from kubernetes.utils.quantity import parse_quantity

    cpu = memory = Decimal(0)
    for container in item.containers:
        cpu += parse_quantity(container.usage.get("cpu", "0"))
        memory += parse_quantity(container.usage.get("memory", "0"))
    return PodUsage(item.metadata.name, item.metadata.labels, float(cpu * 1000), int(memory))


def state_of(pod: _Pod) -> PodState:
    restarts = sum(c.restart_count for c in pod.status.container_statuses)
    return PodState(pod.metadata.name, pod.metadata.labels, restarts, pod.metadata.deletion_timestamp is not None)


class KubeReader:
    """Reads namespaces of the cluster `kubeconfig` names (in-cluster credentials when None).
    Thread-safe: the sampler's workers share one client and its connection pool."""

    def __init__(self, kubeconfig: Path | None, *, timeout_s: float = 10.0) -> None:
        self.kubeconfig = kubeconfig
        self.timeout_s = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()

    def _api(self) -> Any:
        from kubernetes import client, config

        with self._lock:
            if self._client is None:
                cfg = client.Configuration()
                try:
                    if self.kubeconfig is None:
                        config.load_incluster_config(client_configuration=cfg)
                    else:
                        config.load_kube_config(
                            config_file=str(self.kubeconfig), client_configuration=cfg, persist_config=False
                        )
                except Exception as exc:  # a missing or broken kubeconfig: try again next run
                    raise ClusterUnreachable(f"cannot use the kubeconfig: {type(exc).__name__}: {exc}") from None
                self._client = client.ApiClient(cfg)
            return self._client

    def read(self, namespace: str, selector: str) -> Reading:
        metrics = self._get(
            f"/apis/{METRICS_GROUP}/{METRICS_VERSION}/namespaces/{namespace}/pods", selector, _List[_PodMetrics]
        )
        pods = self._get(f"/api/v1/namespaces/{namespace}/pods", selector, _List[_Pod], metrics_api=False)
        return Reading(usage=[usage_of(m) for m in metrics.items], pods=[state_of(p) for p in pods.items])

    def _get(self, path: str, selector: str, type: type[T], *, metrics_api: bool = True) -> T:
        from kubernetes.client.exceptions import ApiException

        api = self._api()
        try:
            response = api.call_api(
                *api.param_serialize(
                    "GET",
                    path,
                    query_params=[("labelSelector", selector)],
                    header_params={"Accept": "application/json"},
                    auth_settings=["BearerToken"],
                ),
                _request_timeout=self.timeout_s,
            )
            response.read()
        except ApiException as exc:
            raise ClusterUnreachable(f"{path}: HTTP {exc.status} {exc.reason}") from None
        except Exception as exc:  # urllib3's connection errors and timeouts
            raise ClusterUnreachable(f"{path}: {type(exc).__name__}") from None
        # 404: the API group is not served; 503: its APIService is registered but down.
        if metrics_api and response.status in (404, 503):
            raise MetricsApiMissing(f"{METRICS_GROUP} answered HTTP {response.status}")
        if response.status >= 400:
            raise ClusterUnreachable(f"{path}: HTTP {response.status}")
        try:
            return msgspec.json.decode(response.data, type=type)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ClusterUnreachable(f"{path}: unexpected answer: {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
