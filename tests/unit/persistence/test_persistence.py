"""Engine, migrations and column types on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from persistence.base import utcnow
from persistence.db import MIGRATIONS_DIR, make_engine, migrate, normalize_url, session_factory
from persistence.models import ApiKey, Operation, TeamMember, User
from tests.concurrent import errors_when_run_at_once


def test_migrate_is_idempotent_and_matches_the_models(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {
            "users",
            "teams",
            "team_members",
            "api_keys",
            "sessions",
            "billing_events",
            "deployments",
            "operations",
            "idempotency_keys",
            "alembic_version",
        } <= tables
        with engine.connect() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            cfg.attributes["connection"] = conn
            # Fails if the models and the migrations disagree.
            command.check(cfg)
    finally:
        engine.dispose()


def test_concurrent_start_ups_migrate_once(database_url: str) -> None:
    assert errors_when_run_at_once(lambda: migrate(database_url), 4) == []


def test_timestamps_round_trip_as_utc_and_json_none_is_null(database_url: str) -> None:
    migrate(database_url)
    engine = make_engine(database_url)
    factory = session_factory(engine)
    try:
        local = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
        with factory() as db:
            user = User(name="bob", password_hash=None, created_at=local)
            db.add(user)
            db.add(Operation(deployment_name="x", kind="create", payload=None))
            db.commit()
        with factory() as db:
            loaded = db.scalar(select(User))
            assert loaded is not None
            assert loaded.created_at == local
            assert loaded.created_at.tzinfo is not None and loaded.created_at.utcoffset() == timedelta(0)
            assert db.scalar(select(User).where(User.created_at < datetime(2030, 1, 2, 2, tzinfo=UTC))) is not None
            assert db.scalar(select(Operation.id).where(Operation.payload.is_(None))) is not None
            with pytest.raises(StatementError, match="naive datetime"):
                db.add(ApiKey(prefix="ssk_x", secret_hash="h", user_id=loaded.id, expires_at=datetime(2030, 1, 1)))
                db.flush()
    finally:
        engine.dispose()


def test_foreign_keys_and_checks_are_enforced(database_url: str) -> None:
    migrate(database_url)
    engine = make_engine(database_url)
    factory = session_factory(engine)
    try:
        with factory() as db:
            db.add(TeamMember(team_id=42, user_id=42, role="member"))
            with pytest.raises(IntegrityError):
                db.commit()
        with factory() as db:
            db.add(User(name="x", tier="platinum", created_at=utcnow()))
            with pytest.raises(IntegrityError):
                db.commit()
    finally:
        engine.dispose()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    finally:
        engine.dispose()


def test_immediate_sessions_take_the_write_lock_at_begin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    migrate(url)
    engine = make_engine(url, connect_args={"timeout": 0.2})
    writer = session_factory(engine, immediate=True)
    try:
        first = writer()
        first.execute(select(User.id)).all()  # only a read, yet the lock is held
        second_engine = make_engine(url)
        with second_engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA busy_timeout = 100")
            with pytest.raises(Exception, match="locked"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        first.rollback()
        first.close()
        second_engine.dispose()
    finally:
        engine.dispose()


def test_plain_postgresql_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
