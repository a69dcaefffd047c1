"""A process that competes for the scheduler's lease and, while it leads, records
writes fenced by it (`python -m tests.unit.scheduler.leader_process URL HOLDER TTL`).

SIGUSR1 makes it stall for twice the lease's lifetime between two of its writes (a
long pause, a partition) and then attempt one more write as the leader it believes it
still is, printing whether the fence let it through."""

from __future__ import annotations

import signal
import sys
import time

from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from persistence.db import make_engine
from scheduler.leader import LeaderLease

LOG = Table("leader_log", MetaData(), Column("id", Integer, primary_key=True, autoincrement=True),
            Column("holder", String(32)), Column("term", Integer))  # fmt: skip


def main(url: str, holder: str, ttl: float) -> None:
    engine = make_engine(url)
    LOG.create(engine, checkfirst=True)
    lease = LeaderLease(engine, holder, ttl_s=ttl)
    stall = []
    signal.signal(signal.SIGUSR1, lambda *_: stall.append(True))
    print("ready", flush=True)
    while True:
        if stall:
            stall.clear()
            time.sleep(2 * ttl)
            with lease.engine.begin() as conn:
                fenced = lease.fence(conn)
                if fenced:
                    conn.execute(insert(LOG).values(holder=holder, term=lease.term))
            print("fence let a stale leader write" if fenced else "fence refused", flush=True)
        elif lease.try_acquire():
            with lease.engine.begin() as conn:
                if lease.fence(conn):
                    conn.execute(insert(LOG).values(holder=holder, term=lease.term))
        time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
