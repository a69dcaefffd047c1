"""Worker leases: each process that runs operations keeps a row in `workers` and
renews it every heartbeat; a worker whose row is older than LEASE (or gone) is dead.

Times are each process's own clock, as for the scheduler's lease: hosts must agree to
well within LEASE, which NTP gives.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from persistence.base import utcnow
from persistence.models import Worker

# Heartbeats come every 10 s (stacks.runner): three missed and the worker is dead.
LEASE = timedelta(seconds=30)
# Rows of workers dead this long are deleted: no row reads as dead too.
FORGET_AFTER = timedelta(days=1)


def register(session: Session, worker_id: str, host: str, pid: int) -> None:
    now = utcnow()
    session.add(Worker(id=worker_id, host=host[:255], pid=pid, started_at=now, heartbeat_at=now))
    session.flush()


def renew(session: Session, worker_id: str, host: str, pid: int) -> None:
    """Renews the lease; a row deleted meanwhile (the worker was presumed dead for a
    day, say a paused VM) is made again: it is alive, and its claims are fenced."""
    done = session.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=utcnow()))
    if done.rowcount == 0:
        register(session, worker_id, host, pid)


def retire(session: Session, worker_id: str) -> None:
    """A worker stopping: its lease ends now, so its unfinished work is re-driven at once."""
    session.execute(delete(Worker).where(Worker.id == worker_id))


def live_ids(now: datetime | None = None) -> Select[tuple[str]]:
    """A subquery of the workers whose lease is current."""
    return select(Worker.id).where(Worker.heartbeat_at >= (now or utcnow()) - LEASE)


def count_live(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(live_ids().subquery())) or 0


def is_alive(session: Session, worker_id: str | None) -> bool:
    if not worker_id:
        return False
    at = session.scalar(select(Worker.heartbeat_at).where(Worker.id == worker_id))
    return at is not None and at >= utcnow() - LEASE


def forget_dead(session: Session) -> None:
    session.execute(delete(Worker).where(Worker.heartbeat_at < utcnow() - FORGET_AFTER))


def current(session: Session) -> list[Worker]:
    """Every worker with a current lease, oldest first (for status and tests)."""
    query = select(Worker).where(Worker.heartbeat_at >= utcnow() - LEASE).order_by(Worker.started_at)
    return list(session.scalars(query))
