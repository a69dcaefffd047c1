"""One process runs operations on a SQLite database: a second one that tries is
refused with a clear message. The lock is a file lock held for the process's life,
so it goes when the process goes, however it ends."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy import Engine


class SingleWorkerError(RuntimeError):
    pass


_held: list[int] = []


def claim_sqlite_workers(engine: Engine) -> None:
    """On SQLite, the right to run workers on this database file; PostgreSQL needs none."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return
    path = Path(f"{engine.url.database}.workers.lock")
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise SingleWorkerError(
            f"another shipstack process runs operations on the SQLite database {engine.url.database}; SQLite serves "
            "one such process. Run this one with SHIPSTACK_ROLE=api, or move to PostgreSQL "
            "(SHIPSTACK_DATABASE_URL=postgresql://...) to run workers in several processes."
        ) from None
    _held.append(descriptor)


def release_sqlite_workers() -> None:
    while _held:
        os.close(_held.pop())
