"""Metrics over time: every interval, the CPU and memory of each service of each
Ready deployment, written to `metric_samples` and thinned there.

Cost per run, bounded whatever the cluster does:

- per Ready deployment, one metrics.k8s.io list and one pod list, in its own
  namespace, for all of its services at once (`scheduler/metrics_kube.py`);
- at most WORKERS deployments read at once, each request cut at `timeout_s`, and
  the whole run given `budget_s`: what has not answered by then is skipped this run;
- a run never overlaps the next (a run that finds one still going returns at once;
  APScheduler also runs the job one instance at a time, in its own thread);
- a cluster without the metrics API costs at most WORKERS requests per run: the
  first answer that says so stops the rest, and it is logged once, not every minute;
- one transaction at the end, behind the scheduler's lease (`LeaderLease.fence`):
  the samples, then the retention of `scheduler/retention.py`.

A sample's time is the run's start (one time for all deployments of a run, so the
rows of a run line up). It does not import `api`: data flows scheduler -> persistence.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Protocol

import msgspec
from sqlalchemy.orm import Session, sessionmaker

from persistence import metrics as store
from persistence.base import utcnow
from persistence.metrics import Sample, SampledDeployment
from programs.labels import LABEL_DEPLOYMENT, LABEL_SERVICE
from programs.spec import namespace_for
from scheduler import retention
from scheduler.leader import LeaderLease
from scheduler.metrics_kube import ClusterUnreachable, MetricsApiMissing, Reading

log = logging.getLogger("shipstack.scheduler.metrics")
WORKERS = 4
MAX_BUDGET_S = 45.0
MAX_THIN_ROWS = 20_000  # single measurements merged per run; a backlog takes a few runs


class ClusterReader(Protocol):
    """What the sampler reads a namespace with (`KubeReader`; a fake in unit tests)."""

    def read(self, namespace: str, selector: str) -> Reading: ...

    def close(self) -> None: ...


class SampleReport(msgspec.Struct, kw_only=True):
    """What one run did (logged, returned to tests)."""

    started_at: datetime
    wall_s: float = 0.0
    deployments: int = 0  # Ready ones
    measured: int = 0  # deployments with at least one service measured
    samples: int = 0  # rows written
    unreachable: int = 0  # deployments whose reads failed
    out_of_time: int = 0  # deployments not read within the run's budget
    metrics_api: bool = True  # False: the cluster serves no metrics.k8s.io
    expired: int = 0
    thinned: int = 0  # single measurements merged into means
    overlapped: bool = False  # another run was still going: this one did nothing
    fenced_out: bool = False  # the lease was lost before the samples could be written


def samples_of(deployment_id: int, reading: Reading, at: datetime) -> list[Sample]:
    """One sample per service with measured pods: usage summed over its pods, pods
    counted, container restarts summed over its pods that are not terminating. A
    pod's service is its `shipstack.dev/service` label (from the pod, else from its
    PodMetrics); pods without one are not shipstack's and are left out."""
    service_of = {p.pod: p.labels.get(LABEL_SERVICE) for p in reading.pods}
    cpu: dict[str, float] = defaultdict(float)
    memory: dict[str, int] = defaultdict(int)
    pods: dict[str, int] = defaultdict(int)
    for usage in reading.usage:
        service = service_of.get(usage.pod) or usage.labels.get(LABEL_SERVICE)
        if service:
            cpu[service] += usage.cpu_millicores
            memory[service] += usage.memory_bytes
            pods[service] += 1
    restarts: dict[str, int] = defaultdict(int)
    for pod in reading.pods:
        service = pod.labels.get(LABEL_SERVICE)
        if service and not pod.terminating:
            restarts[service] += pod.restarts
    return [
        Sample(
            deployment_id=deployment_id,
            service=service,
            at=at,
            cpu_millicores=round(cpu[service], 3),
            memory_bytes=memory[service],
            pods=pods[service],
            restarts=restarts[service],
        )
        for service in sorted(pods)
    ]


class MetricsSampler:
    """`run()` is the scheduled job's body; `close()` stops its threads and client."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        reader: ClusterReader,
        *,
        interval_s: float,
        lease: LeaderLease | None = None,
        workers: int = WORKERS,
        clock: Callable[[], datetime] = utcnow,
        policy: retention.Retention = retention.RETENTION,
    ) -> None:
        self.sessions = sessions
        self.reader = reader
        self.lease = lease
        self.clock = clock
        self.policy = policy
        # Most of an interval, so a slow run ends before the next is due.
        self.budget_s = max(1.0, min(interval_s * 0.8, MAX_BUDGET_S))
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="shipstack-metrics")
        self._running = threading.Lock()
        self._api_missing_logged = False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.reader.close()

    def run(self) -> SampleReport:
        started = time.monotonic()
        report = SampleReport(started_at=self.clock())
        if not self._running.acquire(blocking=False):
            report.overlapped = True
            return report
        try:
            with self.sessions() as session:
                deployments = store.ready_deployments(session)
            report.deployments = len(deployments)
            samples = self._measure(deployments, report)
            self._write(samples, report)
        finally:
            self._running.release()
        report.wall_s = time.monotonic() - started
        return report

    def _measure(self, deployments: list[SampledDeployment], report: SampleReport) -> list[Sample]:
        if not deployments:
            return []
        missing = threading.Event()  # set by the first answer that there is no metrics API

        def read(dep: SampledDeployment) -> Reading | None:
            if missing.is_set():
                return None
            try:
                return self.reader.read(namespace_for(dep.name), f"{LABEL_DEPLOYMENT}={dep.name}")
            except MetricsApiMissing:
                missing.set()
                raise

        futures: dict[Future[Reading | None], SampledDeployment] = {
            self._pool.submit(read, dep): dep for dep in deployments
        }
        done, late = wait(futures, timeout=self.budget_s)
        for future in late:
            future.cancel()  # not started: dropped; started: it ends at its request timeout, unheard
        report.out_of_time = len(late)
        samples: list[Sample] = []
        for future in done:
            dep = futures[future]
            try:
                reading = future.result()
            except MetricsApiMissing as exc:
                self._note_missing_api(str(exc))
                continue
            except ClusterUnreachable as exc:
                report.unreachable += 1
                # Debug only: a cluster that is down would say so for every deployment every
                # interval; the scheduler logs the run's counts.
                log.debug("metrics of %s not read this run: %s", dep.name, exc)
                continue
            if reading is not None:
                found = samples_of(dep.id, reading, report.started_at)
                report.measured += 1 if found else 0
                samples += found
        report.metrics_api = not missing.is_set()
        if report.metrics_api and self._api_missing_logged:
            log.info("the cluster serves metrics.k8s.io again; sampling resumes")
            self._api_missing_logged = False
        return samples

    def _note_missing_api(self, detail: str) -> None:
        if not self._api_missing_logged:
            log.warning("no metrics are sampled: the cluster serves no metrics.k8s.io (%s)", detail)
            self._api_missing_logged = True

    def _write(self, samples: list[Sample], report: SampleReport) -> None:
        now = report.started_at
        with self.sessions() as session, session.begin():
            if self.lease is not None and not self.lease.fence(session):
                report.fenced_out = True
                return
            report.samples = store.add_samples(session, samples)
            report.expired = store.expire_before(session, retention.expire_before(now, self.policy))
            raw = store.raw_before(session, retention.thin_before(now, self.policy), MAX_THIN_ROWS)
            if raw:
                bucket = timedelta(seconds=self.policy.bucket_s)
                first = retention.bucket_start(raw[0].at, self.policy.bucket_s)
                means = store.means_between(session, {r.deployment_id for r in raw}, first, raw[-1].at + bucket)
                thinning = retention.plan([*raw, *means], now, self.policy)
                store.replace_samples(session, thinning.drop, thinning.add)
                report.thinned = len(raw)
