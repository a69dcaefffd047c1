"""The auto-update scheduler in the service process: APScheduler behind a lease.

Every service process creates an `AutoUpdateScheduler` and starts it. A small
thread keeps trying to hold the `scheduler_leader` lease (scheduler/leader.py);
only while it holds it does the process run an APScheduler `BackgroundScheduler`
whose job store is the service's database (`apscheduler_jobs`), so the poll job's
next run time survives restarts and hand-overs: a new leader picks up the same
job instead of polling every registry at once on start.

The job fires every `tick` seconds (the global interval, at most 60 s so that
per-deployment intervals down to a minute are honoured); each run polls only the
deployments whose own interval has passed (scheduler/poll.py).

The same leader runs the drift job (scheduler/drift.py) every few seconds when
`SHIPSTACK_DRIFT_INTERVAL` is not 0: it queues the drift checks that are due, a few
at a time. Two executor threads, so a long registry poll never holds it up.

A second job samples the CPU and memory of Ready deployments every
`metrics_interval_s` (scheduler/metrics_sampler.py). It runs on an executor of its
own, so a long registry poll never delays a sample, and one instance at a time.

Its settings are the `scheduler` and `registry` sections of `stacks.settings.Settings`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor as APThreadPool
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from persistence.base import utcnow
from persistence.db import SQLITE_BEGIN_OPTION, session_factory
from scheduler.drift import DriftScheduler, DriftTick
from scheduler.leader import LeaderLease
from scheduler.metrics_kube import KubeReader
from scheduler.metrics_sampler import MetricsSampler, SampleReport
from scheduler.poll import Poller, PollReport
from scheduler.registry import ClientOptions, RegistryClient
from stacks.settings import SchedulerSettings, Settings

log = logging.getLogger("shipstack.scheduler")
# APScheduler logs every run of a job at INFO: twice a minute per process for the
# metrics sample. Its warnings and errors (a run missed, a job that raised) still show.
logging.getLogger("apscheduler.executors.metrics").setLevel(logging.WARNING)
JOB_ID = "shipstack-auto-update-poll"
DRIFT_JOB_ID = "shipstack-drift-checks"
METRICS_JOB_ID = "shipstack-metrics-sample"
JOB_TABLE = "apscheduler_jobs"


# APScheduler's persistent store keeps a *reference* to the job function, so it must
# be a module-level function; it finds the live scheduler of this process by holder.
_INSTANCES: dict[str, AutoUpdateScheduler] = {}
_INSTANCES_LOCK = threading.Lock()


def _instance(holder: str, job: str) -> AutoUpdateScheduler | None:
    """The live scheduler a stored job names. A job stored by a process that is gone
    finds none and does nothing; the new leader re-registers it under its own holder."""
    with _INSTANCES_LOCK:
        instance = _INSTANCES.get(holder)
    if instance is None:
        log.warning("%s job for %s, which is not running in this process; skipped", job, holder)
    return instance


def run_poll_job(holder: str) -> None:
    """The scheduled registry poll."""
    instance = _instance(holder, "poll")
    if instance is not None:
        instance.run_scheduled(instance.poll_now, "auto-update poll")


def run_metrics_job(holder: str) -> None:
    """The scheduled metrics sample."""
    instance = _instance(holder, "metrics")
    if instance is not None:
        instance.run_scheduled(instance.sample_now, "metrics sample")


def run_drift_job(holder: str) -> None:
    """The scheduled drift tick."""
    instance = _instance(holder, "drift")
    if instance is not None:
        instance.run_scheduled(instance.drift_now, "scheduling drift checks")


class AutoUpdateScheduler:
    """Start with `start()`, stop with `stop()`; `poll_now()` runs a poll at once."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        config: SchedulerSettings | None = None,
        client: RegistryClient | None = None,
        notify: Callable[[], None] | None = None,
        holder: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.config = config or settings.scheduler
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.client = client or RegistryClient(ClientOptions.from_settings(settings.registry))
        self._owns_client = client is None
        self.lease = LeaderLease(engine, self.holder, ttl_s=self.config.lease_ttl_s)
        self.poller = Poller(
            settings,
            session_factory(engine, immediate=True),
            self.client,
            poll_interval_s=self.config.poll_interval_s,
            lease=self.lease,
            max_workers=self.config.max_workers,
            notify=notify,
        )
        self.drift = DriftScheduler(settings, session_factory(engine, immediate=True), lease=self.lease, notify=notify)
        self.sampler = MetricsSampler(
            session_factory(engine, immediate=True),
            KubeReader(settings.engine.kubeconfig),
            interval_s=self.config.metrics_interval_s or 60.0,
            lease=self.lease,
        )
        self.last_report: PollReport | None = None
        self.last_drift: DriftTick | None = None
        self.last_sample: SampleReport | None = None
        self._aps: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()
        self._drift_lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        with _INSTANCES_LOCK:
            _INSTANCES[self.holder] = self
        if not self.config.enabled:
            log.info("auto-update scheduler disabled in this process")
            return
        self._thread = threading.Thread(target=self._elect_loop, name="shipstack-scheduler-lease", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._demote()
        if self.lease.term is not None:
            try:
                self.lease.release()
            except Exception:
                log.exception("releasing the scheduler lease failed")
        with _INSTANCES_LOCK:
            _INSTANCES.pop(self.holder, None)
        self.sampler.close()
        if self._owns_client:
            self.client.close()

    @property
    def is_leader(self) -> bool:
        return self._aps is not None

    # --- election --------------------------------------------------------------

    def _elect_loop(self) -> None:
        every = max(0.2, self.config.lease_ttl_s / 3)
        while not self._stop.is_set():
            try:
                held = self.lease.try_acquire()
            except Exception:
                log.exception("the scheduler lease check failed")
                held = False
            if held and self._aps is None:
                try:
                    self._promote()
                except Exception:  # e.g. the database is briefly unavailable: next round retries
                    log.exception("starting the scheduler failed")
                    self._demote()
            elif not held and self._aps is not None:
                log.warning("lost the scheduler lease; stopping the scheduler in this process")
                self._demote()
            self._stop.wait(every)

    def _promote(self) -> None:
        # IMMEDIATE on SQLite: the job store reads then writes, and a deferred transaction
        # would fail at once (not wait) if the poll committed in between.
        engine = self.engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        aps = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)},
            executors={"default": APThreadPool(2), "metrics": APThreadPool(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self._aps = aps  # set first, so a failure below is cleaned up by _demote
        aps.start(paused=True)
        tick = self.config.tick_s
        existing = aps.get_job(JOB_ID)
        next_run: datetime = utcnow() + timedelta(seconds=1)
        if existing is not None and existing.next_run_time is not None:
            # Keep the schedule a previous leader left, unless it is further away than one tick.
            next_run = min(existing.next_run_time, utcnow() + timedelta(seconds=tick))
        aps.add_job(
            run_poll_job,
            trigger=IntervalTrigger(seconds=tick, timezone="UTC"),
            id=JOB_ID,
            name="poll registries for auto-updates",
            kwargs={"holder": self.holder},
            replace_existing=True,
            next_run_time=next_run,
        )
        if self.config.drift_interval_s > 0:
            aps.add_job(
                run_drift_job,
                trigger=IntervalTrigger(seconds=self.config.drift_tick_s, timezone="UTC"),
                id=DRIFT_JOB_ID,
                name="queue the drift checks that are due",
                kwargs={"holder": self.holder},
                replace_existing=True,
            )
        elif aps.get_job(DRIFT_JOB_ID) is not None:  # turned off since a previous leader stored it
            aps.remove_job(DRIFT_JOB_ID)
        self._schedule_metrics(aps)
        aps.resume()
        log.info("auto-update scheduler active in %s (tick %.0f s, first poll %s)", self.holder, tick, next_run)

    def _schedule_metrics(self, aps: BackgroundScheduler) -> None:
        every = self.config.metrics_interval_s
        if every <= 0:  # sampling turned off: drop a job an earlier configuration stored
            if aps.get_job(METRICS_JOB_ID) is not None:
                aps.remove_job(METRICS_JOB_ID)
            return
        aps.add_job(
            run_metrics_job,
            trigger=IntervalTrigger(seconds=every, timezone="UTC"),
            id=METRICS_JOB_ID,
            name="sample the CPU and memory of Ready deployments",
            kwargs={"holder": self.holder},
            executor="metrics",
            replace_existing=True,
            next_run_time=utcnow() + timedelta(seconds=min(every, 5.0)),
        )

    def _demote(self) -> None:
        aps, self._aps = self._aps, None
        if aps is not None:
            try:
                aps.shutdown(wait=False)
            except Exception:
                log.exception("stopping APScheduler failed")

    # --- polls -------------------------------------------------------------------

    def run_scheduled(self, work: Callable[[], object], what: str) -> None:
        """A scheduled job's body: only while leading, and a failure is logged, not raised
        (APScheduler would only log it less clearly)."""
        if self._aps is None:
            return
        try:
            work()
        except Exception:
            log.exception("%s failed", what)

    def sample_now(self) -> SampleReport:
        """One metrics sample now; a sample still running makes this one return at once."""
        if not self.lease.try_acquire():
            return SampleReport(started_at=utcnow(), fenced_out=True)
        report = self.sampler.run()
        self.last_sample = report
        if report.unreachable or report.out_of_time:
            log.info(
                "metrics sample: %d of %d deployments measured, %d unreachable, %d out of time, %.2f s",
                report.measured, report.deployments, report.unreachable, report.out_of_time, report.wall_s,
            )  # fmt: skip
        return report

    def poll_now(self, *, force: bool = False) -> PollReport:
        """One poll now (serialised with the scheduled one)."""
        with self._poll_lock:
            if not self.lease.try_acquire():  # another process leads: it polls
                return PollReport(started_at=utcnow(), fenced_out=True)
            report = self.poller.poll(force=force)
        self.last_report = report
        if report.updates or report.errors:
            log.info(
                "auto-update poll: %d due, %d repositories, %d requests, %d updates, %d errors, %.2f s",
                report.due, report.repositories, report.requests, len(report.updates), report.errors, report.wall_s,
            )  # fmt: skip
        return report

    # --- drift checks ------------------------------------------------------------

    def drift_now(self) -> DriftTick:
        """One drift tick now (serialised with the scheduled one)."""
        with self._drift_lock:
            if not self.lease.try_acquire():  # another process leads: it schedules
                return DriftTick(started_at=utcnow(), fenced_out=True)
            tick = self.drift.tick()
        self.last_drift = tick
        if tick.queued:
            log.info("drift checks queued: %s (%d due, %d waiting for a slot)", ", ".join(tick.queued), tick.due,
                     tick.waiting)  # fmt: skip
        return tick
