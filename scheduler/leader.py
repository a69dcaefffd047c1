"""One active scheduler across processes: a lease row in the shared database.

APScheduler 3 has no coordination of its own: two processes sharing one
SQLAlchemy job store would both run every job. So every service process runs a
tiny election loop and only the lease holder starts APScheduler. The lease is a
row (`scheduler_leader`) with a holder and an expiry; the holder renews it every
third of its lifetime, and anyone may take it over once it has expired. Taking
over and renewing are single compare-and-set UPDATEs, which PostgreSQL (row lock,
WHERE re-checked after the lock) and SQLite (one writer) both make atomic.

`fence` re-checks and extends the lease inside the caller's transaction, so a
poll that lost its lease halfway (paused process, network partition) cannot
commit operations after another process has taken over.

Expiry uses each process's clock: hosts must agree to well within the lease
lifetime (30 s by default), which NTP gives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from persistence.base import utcnow
from persistence.db import SQLITE_BEGIN_OPTION
from persistence.scheduler_tables import leader_table

log = logging.getLogger("shipstack.scheduler.leader")
DEFAULT_LEASE = "auto-update"


class LeaderLease:
    def __init__(
        self,
        engine: Engine,
        holder: str,
        *,
        name: str = DEFAULT_LEASE,
        ttl_s: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        self.holder = holder
        self.name = name
        self.ttl = timedelta(seconds=ttl_s)
        self.clock = clock
        self.term: int | None = None

    def try_acquire(self) -> bool:
        """Renews our lease, or takes an expired or missing one. True: we lead."""
        t = leader_table
        now = self.clock()
        with self.engine.begin() as conn:
            renewed = conn.execute(
                update(t).where(t.c.name == self.name, t.c.holder == self.holder).values(expires_at=now + self.ttl)
            ).rowcount
            if renewed:
                self.term = conn.scalar(select(t.c.term).where(t.c.name == self.name))
                return True
            taken = conn.execute(
                update(t)
                .where(t.c.name == self.name, t.c.expires_at < now)
                .values(holder=self.holder, term=t.c.term + 1, acquired_at=now, expires_at=now + self.ttl)
            ).rowcount
            if taken:
                self.term = conn.scalar(select(t.c.term).where(t.c.name == self.name))
                log.info("took over the scheduler lease (term %s) as %s", self.term, self.holder)
                return True
            if conn.scalar(select(t.c.name).where(t.c.name == self.name)) is not None:
                return False
        return self._insert(now)

    def _insert(self, now: datetime) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(leader_table).values(
                        name=self.name, holder=self.holder, term=1, acquired_at=now, expires_at=now + self.ttl
                    )
                )
        except IntegrityError:
            return False  # another process created it first
        self.term = 1
        log.info("took the scheduler lease (term 1) as %s", self.holder)
        return True

    def release(self) -> None:
        """Gives the lease up at once so another process need not wait for expiry."""
        t = leader_table
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.name == self.name, t.c.holder == self.holder)
                .values(expires_at=self.clock() - timedelta(seconds=1))
            )
        self.term = None

    def fence(self, session: Session | Connection) -> bool:
        """Inside the caller's transaction: True (and the lease extended) only if we
        still hold an unexpired lease. Call it before writing anything a leader owns."""
        t = leader_table
        now = self.clock()
        return (
            session.execute(
                update(t)
                .where(t.c.name == self.name, t.c.holder == self.holder, t.c.expires_at >= now)
                .values(expires_at=now + self.ttl)
            ).rowcount
            == 1
        )

    def current(self) -> tuple[str, int, datetime] | None:
        """(holder, term, expires_at) of the lease, for status and tests."""
        t = leader_table
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.holder, t.c.term, t.c.expires_at).where(t.c.name == self.name)).first()
        return None if row is None else (row.holder, row.term, row.expires_at)
