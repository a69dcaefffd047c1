"""Scheduled drift checks: which deployments are due, and their checks queued.

The scheduler's leader runs `DriftScheduler.tick` every few seconds
(scheduler/jobs.py). A check is an ordinary `drift-check` operation, so the runner
never runs it alongside another operation of the same deployment, and this module
does not even queue one behind pending work: a due deployment with an operation
queued or running, or not Ready, is skipped (the reason is recorded) and tried
again at the next tick.

At most `SHIPSTACK_DRIFT_CONCURRENCY` checks are queued or running at once, most
overdue first, so checks never fill the runner's worker pool ahead of users' writes.
A deployment's interval is its spec's `drift.interval_s` (0: never), else
`SHIPSTACK_DRIFT_INTERVAL`, counted from its last check (or the last one queued, or
its creation: a new deployment is not checked the moment it exists).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from persistence import drift as store
from persistence import operations as ops
from persistence.base import utcnow
from persistence.enums import ACTIVE, DeploymentStatus, OperationKind
from persistence.models import Deployment, Operation
from programs.spec import KEY_DRIFT, drift_settings_of
from scheduler.leader import LeaderLease
from scheduler.targets import ConfigCache
from stacks.settings import Settings

log = logging.getLogger("shipstack.scheduler.drift")
BUSY = "an operation is queued or running; tried again at the next tick"


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A deployment as the drift schedule sees it."""

    deployment_id: int
    name: str
    status: str
    interval_s: float  # 0: never on a schedule
    since: datetime  # its last check, or check queued, or its creation
    busy: bool  # an operation is queued or running
    skip_reason: str | None = None  # as last recorded

    @property
    def due_at(self) -> datetime:
        return self.since + timedelta(seconds=self.interval_s)


class Plan(msgspec.Struct, frozen=True):
    queue: list[Candidate]  # checks to queue now, most overdue first
    skipped: list[tuple[Candidate, str]]  # due, but left alone this tick, and why
    waiting: int  # due and free, but every check slot is taken


def plan(candidates: Sequence[Candidate], now: datetime, slots: int) -> Plan:
    """Which due deployments to check now (at most `slots`), which to skip and why."""
    due = sorted((c for c in candidates if c.interval_s > 0 and c.due_at <= now), key=lambda c: c.due_at)
    skipped: list[tuple[Candidate, str]] = []
    free: list[Candidate] = []
    for c in due:
        if c.busy:
            skipped.append((c, BUSY))
        elif c.status != DeploymentStatus.READY:
            skipped.append((c, f"the deployment is {c.status}, not Ready"))
        else:
            free.append(c)
    take = max(0, slots)
    return Plan(queue=free[:take], skipped=skipped, waiting=len(free[take:]))


class DriftTick(msgspec.Struct, kw_only=True):
    """What one tick did (for logs, tests and the bench)."""

    started_at: datetime
    deployments: int = 0
    due: int = 0
    queued: list[str] = []
    skipped: dict[str, str] = {}  # name -> why
    waiting: int = 0
    fenced_out: bool = False  # the lease was lost: nothing was written
    wall_s: float = 0.0


class DriftScheduler:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        *,
        lease: LeaderLease | None = None,
        cache: ConfigCache | None = None,
        clock: Callable[[], datetime] = utcnow,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.lease = lease
        # Only the plain `shipstack:drift` key of the config of record, cached by its text.
        self.cache = cache or ConfigCache(keys=(KEY_DRIFT,))
        self.clock = clock
        self.notify = notify

    def _candidates(self, s: Session) -> tuple[list[Candidate], int]:
        """Every deployment with a stack, and how many checks are queued or running."""
        rows = s.execute(
            select(
                Deployment.id, Deployment.name, Deployment.status, Deployment.created_at, Deployment.stack_config
            ).where(Deployment.status != DeploymentStatus.DELETING)
        ).all()
        busy = set(s.scalars(select(Operation.deployment_name).where(Operation.status.in_(ACTIVE))))
        active_checks = s.scalar(
            select(func.count()).where(Operation.kind == OperationKind.DRIFT_CHECK, Operation.status.in_(ACTIVE))
        )
        statuses = store.load(s, [r.id for r in rows])
        default_s = self.settings.scheduler.drift_interval_s
        out = []
        for r in rows:
            try:
                config = self.cache.read(r.name, r.stack_config)
            except Exception:  # an unreadable stack config: the check itself will say so
                config = {}
            if config is None:
                continue  # no stack config: never created, nothing to compare yet
            own = drift_settings_of(config.get(KEY_DRIFT)).interval_s
            st = statuses.get(r.id)
            marks = [t for t in ((st.checked_at, st.queued_at) if st else ()) if t is not None]
            out.append(
                Candidate(
                    deployment_id=r.id, name=r.name, status=r.status,
                    interval_s=float(default_s if own is None else own), since=max(marks, default=r.created_at),
                    busy=r.name in busy, skip_reason=st.skip_reason if st else None,
                )
            )  # fmt: skip
        return out, int(active_checks or 0)

    def tick(self) -> DriftTick:
        """Queues the checks that are due, within the concurrency bound."""
        t0 = time.perf_counter()
        now = self.clock()
        report = DriftTick(started_at=now)
        with self.sessions() as s, s.begin():
            candidates, active = self._candidates(s)
            chosen = plan(candidates, now, self.settings.scheduler.drift_concurrency - active)
            report.deployments, report.waiting = len(candidates), chosen.waiting
            report.due = len(chosen.queue) + len(chosen.skipped) + chosen.waiting
            report.skipped = {c.name: reason for c, reason in chosen.skipped}
            if (chosen.queue or chosen.skipped) and self.lease is not None and not self.lease.fence(s):
                report.fenced_out = True
                return report
            for c in chosen.queue:
                ops.enqueue(s, c.name, OperationKind.DRIFT_CHECK, {"scheduled": True}, "scheduled drift check")
                store.record_queued(s, c.deployment_id, now)
                report.queued.append(c.name)
            for c, reason in chosen.skipped:
                if c.skip_reason != reason:  # written once per reason, not every tick
                    store.record_skipped(s, c.deployment_id, now, reason)
        if report.queued and self.notify is not None:
            self.notify()
        report.wall_s = time.perf_counter() - t0
        return report
