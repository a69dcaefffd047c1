"""Engine and session factory for SQLite and PostgreSQL, and start-up migrations.

SQLite: WAL (readers never block the writer), foreign keys enforced, a busy
timeout instead of instant "database is locked", and transactions begun by us
(`BEGIN`, or `BEGIN IMMEDIATE` on request) rather than by pysqlite's implicit
and unreliable statement sniffing.
PostgreSQL: psycopg 3 (`postgresql+psycopg://`), pre-ping to survive restarts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option naming the SQLite BEGIN mode for a connection or engine.
SQLITE_BEGIN_OPTION = "shipstack_sqlite_begin"
# Any fixed 64-bit number; serialises concurrent `migrate()` calls on PostgreSQL.
_MIGRATION_LOCK_ID = 0x5348_4950_5354_4B21
# Another: serialises `bootstrap` (first admin) across replicas starting at once.
BOOTSTRAP_LOCK_ID = 0x5348_4950_5354_4B22


def normalize_url(url: str | URL) -> URL:
    """Default bare `postgresql://` to the installed psycopg 3 driver (not psycopg2)."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def make_engine(url: str | URL, *, echo: bool = False, **kwargs: Any) -> Engine:
    u = normalize_url(url)
    # hide_parameters: error messages (and so logs) never carry bound values,
    # which include key hashes and operation payloads with env values.
    kwargs.setdefault("hide_parameters", True)
    if u.get_backend_name() == "sqlite":
        connect_args = kwargs.pop("connect_args", {})
        # The API serves a request's session from worker threads.
        connect_args.setdefault("check_same_thread", False)
        engine = create_engine(u, echo=echo, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(u, echo=echo, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Autocommit at the driver level; the "begin" hook below issues BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys = ON")
            if engine.url.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"bad {SQLITE_BEGIN_OPTION}: {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")


def session_factory(engine: Engine, *, immediate: bool = False) -> sessionmaker[Session]:
    """Sessions bound to `engine`; objects stay readable after commit.

    immediate=True: on SQLite each transaction takes the write lock at BEGIN, for
    read-then-write transactions (claiming a queued operation) that would otherwise
    fail with SQLITE_BUSY when another writer commits between the read and the write.
    No effect on PostgreSQL, where such code uses `SELECT ... FOR UPDATE SKIP LOCKED`.
    """
    bind = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}) if immediate else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def one_at_a_time(conn: Connection, lock_id: int) -> None:
    """Until `conn`'s transaction ends, other callers with the same `lock_id` wait: for
    work that must not run twice at once (a migration, a check-then-insert; from a
    Session, pass `session.connection()`). PostgreSQL: an advisory transaction lock.
    SQLite: nothing to do when the transaction begins IMMEDIATE, as one writer at a
    time is all SQLite allows."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


def alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def sqlite_foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite's foreign keys off for the migrations run on `conn`, on again after.

    SQLite alters a table by building a new one and dropping the old, and a DROP with
    foreign keys on deletes the rows that point at it (ON DELETE CASCADE: every
    revision, drift record and metric sample of a rebuilt `deployments`). The pragma
    is a no-op inside a transaction, so this must wrap `conn.begin()`."""
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys = ON")


def check_sqlite_foreign_keys(conn: Connection) -> None:
    """Raises (so the migration rolls back) if a migration left a dangling reference."""
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({row[0] for row in broken})
        raise RuntimeError(f"the migration left rows pointing at nothing in {', '.join(tables)}")


def migrate(url: str | URL | Engine, revision: str = "head") -> None:
    """`alembic upgrade head`, safe to call from several processes starting at once."""
    from alembic import command

    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        if engine.dialect.name == "sqlite":
            # BEGIN IMMEDIATE: a second process waits for the first one's DDL to commit.
            with engine.connect() as conn, sqlite_foreign_keys_off(conn):
                conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    command.upgrade(alembic_config(conn), revision)
                    check_sqlite_foreign_keys(conn)
        else:
            with engine.connect() as conn, conn.begin():
                one_at_a_time(conn, _MIGRATION_LOCK_ID)
                command.upgrade(alembic_config(conn), revision)
    finally:
        if not isinstance(url, Engine):
            engine.dispose()
