"""Per-stack exclusion while Pulumi runs: at most one pulumi process per stack, across
every process and host sharing the database.

On PostgreSQL a worker holds a session-level advisory lock on a key derived from the
stack's name, on a connection of its own (not the pool's, whose connections go back to
the pool and carry transactions). PostgreSQL releases it when the session ends: the
worker dies, its host dies, or the connection is cut, so nothing is left to clean up.
The connection has short TCP keepalives and a user timeout on both ends, so a cut is
noticed within seconds rather than the kernel's two hours, and it is probed every
PROBE_EVERY_S: a worker whose lock session died, or stopped answering for
PROBE_TIMEOUT_S, stops its own pulumi at once (`on_lost`): within about 10 s of a cut,
before its lease (30 s) expires and so before anyone else may remove that pulumi's
backend lock (stacks.locks). PgBouncer in transaction mode breaks session locks:
point the service at PostgreSQL itself (or a session-mode pool).

On SQLite one process runs operations (stacks.exclusive), so a lock in the process
suffices.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Protocol

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import URL

log = logging.getLogger("shipstack.stacklock")

PROBE_EVERY_S = 3.0
PROBE_TIMEOUT_S = 5.0
PROBE = "SELECT 1"
# Client side (libpq): keepalive probes after 5 s idle, every 2 s, 3 missed and the
# connection is dead; data unacknowledged for 8 s and it is dead too.
CLIENT_KEEPALIVE = dict(keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
                        tcp_user_timeout=8000, connect_timeout=10)  # fmt: skip
# Server side, for this session only: PostgreSQL notices a vanished client as fast, and
# never ends the session for idling while pulumi runs (idle_session_timeout, PG 14+).
SERVER_SETTINGS = ("tcp_keepalives_idle = 5", "tcp_keepalives_interval = 2", "tcp_keepalives_count = 3",
                   "tcp_user_timeout = 8000", "idle_session_timeout = 0",
                   "idle_in_transaction_session_timeout = 0")  # fmt: skip


def lock_key(stack: str) -> int:
    """A signed 64-bit key for the stack (pg_try_advisory_lock's bigint form)."""
    digest = hashlib.sha256(f"shipstack:stack:{stack}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Held(Protocol):
    @property
    def lost(self) -> bool:
        """True once the lock was lost while held (its session died)."""
        ...

    def release(self) -> None: ...


class StackLocks(Protocol):
    def try_acquire(self, stack: str, on_lost: Callable[[], None]) -> Held | None:
        """The stack's lock, or None when another holder has it. `on_lost` is called
        (from another thread) if the lock is lost while held."""
        ...


def for_engine(engine: Engine) -> StackLocks:
    if engine.dialect.name == "postgresql":
        return PostgresStackLocks(engine.url)
    return LocalStackLocks()


class _LocalHeld:
    def __init__(self, owner: LocalStackLocks, stack: str) -> None:
        self.owner = owner
        self.stack = stack
        self.lost = False

    def release(self) -> None:
        with self.owner.mutex:
            self.owner.held.discard(self.stack)


class LocalStackLocks:
    """One process runs operations (SQLite): a set of held stack names."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.held: set[str] = set()

    def try_acquire(self, stack: str, on_lost: Callable[[], None]) -> Held | None:
        with self.mutex:
            if stack in self.held:
                return None
            self.held.add(stack)
        return _LocalHeld(self, stack)


def conninfo(url: URL) -> str:
    """The libpq URI of an SQLAlchemy URL (driver name dropped)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class _PostgresHeld:
    """An advisory lock held on its own session, probed by a watchdog thread."""

    def __init__(self, conn: psycopg.Connection, stack: str, on_lost: Callable[[], None]) -> None:
        self.conn = conn
        self.stack = stack
        self.on_lost = on_lost
        self.lost = False
        self._stop = threading.Event()
        self._mutex = threading.Lock()  # a psycopg connection serves one thread at a time
        self._watchdog = threading.Thread(target=self._watch, name=f"shipstack-lock-{stack}", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        while not self._stop.wait(PROBE_EVERY_S):
            if self._probe():
                continue
            if self._stop.is_set():
                return
            self.lost = True
            log.error("the lock session of stack %s died or hangs: stopping its pulumi", self.stack)
            self._sever()
            try:
                self.on_lost()
            except Exception:
                log.exception("stopping the pulumi of stack %s failed", self.stack)
            return

    def _probe(self) -> bool:
        """True when the session answered within PROBE_TIMEOUT_S. A dropped connection
        fails fast (the TCP settings above); one that hangs (a stuck proxy, a server
        that stopped answering) is given up on after the timeout."""
        answered = threading.Event()
        alive: list[bool] = []

        def probe() -> None:
            try:
                with self._mutex:
                    self.conn.execute(PROBE)
                alive.append(True)
            except psycopg.Error:
                pass
            finally:
                answered.set()

        threading.Thread(target=probe, name=f"shipstack-lock-probe-{self.stack}", daemon=True).start()
        return answered.wait(PROBE_TIMEOUT_S) and bool(alive)

    def _sever(self) -> None:
        """Shuts the session's socket down, which wakes a probe stuck reading it."""
        with contextlib.suppress(OSError, psycopg.Error):
            sock = socket.socket(fileno=os.dup(self.conn.fileno()))
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.close()

    def release(self) -> None:
        # Closing the session releases the lock; an explicit unlock would add nothing.
        self._stop.set()
        if not self._mutex.acquire(timeout=PROBE_TIMEOUT_S):
            self._sever()  # a probe hangs on the session: wake it with an error
            self._mutex.acquire()
        try:
            self.conn.close()
        finally:
            self._mutex.release()
        self._watchdog.join(PROBE_EVERY_S + PROBE_TIMEOUT_S)


class PostgresStackLocks:
    def __init__(self, url: URL) -> None:
        self.conninfo = conninfo(url)

    def try_acquire(self, stack: str, on_lost: Callable[[], None]) -> Held | None:
        conn = psycopg.connect(self.conninfo, autocommit=True, application_name="shipstack stack lock",
                               **CLIENT_KEEPALIVE)  # fmt: skip
        try:
            for setting in SERVER_SETTINGS:
                with contextlib.suppress(psycopg.errors.UndefinedObject):  # an older server lacks it
                    conn.execute(f"SET {setting}")
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(stack),)).fetchone()
        except BaseException:
            conn.close()
            raise
        if not row or not row[0]:
            conn.close()
            return None
        return _PostgresHeld(conn, stack, on_lost)
