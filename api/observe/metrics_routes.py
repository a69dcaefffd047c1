"""`GET /api/deployments/{name}/metrics?service=&window=`: the service's CPU and memory
now, from the cluster's metrics.k8s.io, and with `window` (1h, 6h, 24h) every
service's stored samples over that window with pod restarts and revisions marked.

The current values are read as the contract says (`cpuUsage`, `memoryUsage`,
`timestamp`, ...); the samples are what the scheduler's sampler stored
(scheduler/metrics_sampler.py), shaped by `api.observe.series`. A cluster without
the metrics API is 503 `metrics_unavailable`, with or without a window.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import anyio.to_thread
from litestar import Request, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from api.auth.guards import CurrentPrincipal
from api.errors import Unavailable
from api.http.context import context_of
from api.http.dependencies import AppDatabase, AppSettings
from api.http.errors import error_responses
from api.observe import series, service
from api.observe.kube_models import KubeError, KubeNotFound, KubeUnavailable, PodList, PodMetricsList
from api.observe.routes import ERRORS, READS, ServiceParam, kube_of, target_for
from api.observe.schemas import MetricsResponse
from persistence.base import utcnow

WindowParam = Annotated[
    str | None,
    QueryParameter(
        name="window",
        required=False,
        description="Also the stored samples of every service over the last 1h, 6h or 24h, with restart and "
        "revision markers (400 otherwise)",
    ),
]


@get(
    "/api/deployments/{name:str}/metrics",
    guards=READS,
    responses={
        **ERRORS,
        400: ResponseSpec(
            error_responses(400)[400].data_container,
            description="Bad input: `bad_window` (window not 1h, 6h or 24h), `unknown_service`",
        ),
        503: ResponseSpec(
            error_responses(503)[503].data_container,
            description="The cluster is unreachable (`cluster_unavailable`) or serves no metrics.k8s.io "
            "(`metrics_unavailable`)",
        ),
    },
)
async def deployment_metrics(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    database: AppDatabase,
    settings: AppSettings,
    name: FromPath[str],
    service_name: ServiceParam = None,
    window: WindowParam = None,
) -> MetricsResponse:
    """CPU and memory of the service's pods, summed, from the cluster's metrics.k8s.io API;
    with `window`, also every service's samples over that window (taken by the scheduler
    every SHIPSTACK_METRICS_INTERVAL seconds) and the pod restarts and revisions in it."""
    window = series.parse_window(window)
    target = await target_for(database, settings, principal, name, service_name)
    kube = kube_of(context_of(request.app.state))
    metrics, pods = await asyncio.gather(
        kube.pod_metrics(target.namespace, target.selector),
        kube.list_pods(target.namespace, target.selector),
        return_exceptions=True,
    )
    for result in (pods, metrics):
        if isinstance(result, KubeUnavailable) and result.status == 0:
            raise service.cluster_error(result)  # the API server itself is unreachable
    if isinstance(metrics, KubeNotFound | KubeUnavailable):
        raise Unavailable(
            "The cluster serves no metrics API (metrics.k8s.io): install metrics-server, or wait until it is available",
            "metrics_unavailable",
        )
    for result in (metrics, pods):
        if isinstance(result, KubeError):
            raise service.cluster_error(result)
        if isinstance(result, BaseException):
            raise result
    assert isinstance(metrics, PodMetricsList) and isinstance(pods, PodList)
    current = service.metrics_summary(target, metrics, pods)
    if window is None:
        return current
    interval_s = settings.scheduler.metrics_interval_s

    def read() -> MetricsResponse:
        with database.reads() as db:
            return service.with_history(db, current, target, window, interval_s, utcnow())

    return await anyio.to_thread.run_sync(read)


ROUTES = [deployment_metrics]
