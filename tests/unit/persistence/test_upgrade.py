"""An existing database upgrades in place: one made by migration 0001 (with the
scheduler's tables as the service used to create them at run time, and without),
holding users, deployments and operations of every kind, is migrated to head."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Float, LargeBinary, MetaData, Table, Unicode, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from persistence.base import utcnow
from persistence.db import alembic_config, make_engine, migrate
from persistence.enums import OperationKind
from persistence.models import Deployment, Operation, User
from persistence.scheduler_tables import bad_digests_table, leader_table, repositories_table, status_table

SCHEDULER_TABLES = {"scheduler_leader", "registry_repositories", "auto_update_status", "auto_update_bad_digests"}


def make_0001_database(url: str, *, runtime_tables: bool) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            command.upgrade(alembic_config(conn), "0001")
        now = utcnow()
        with engine.begin() as conn:
            conn.execute(insert(User.__table__).values(id=1, name="alice", is_admin=False, tier="free", created_at=now))
            conn.execute(
                insert(Deployment.__table__).values(
                    id=1, name="web", owner_user_id=1, template="nginx", visibility="public", status="Ready",
                    ingresses=[], revision=1, created_at=now, updated_at=now,
                )
            )  # fmt: skip
            for n, kind in enumerate(OperationKind):
                conn.execute(
                    insert(Operation.__table__).values(
                        id=f"op-{n}", deployment_name="web", kind=kind.value, status="succeeded", message=kind.value,
                        created_at=now,
                    )
                )  # fmt: skip
            if runtime_tables:  # what scheduler.store.ensure_tables and APScheduler used to create
                old = MetaData()
                for table in (leader_table, repositories_table, status_table, bad_digests_table):
                    table.to_metadata(old)
                Table(
                    "apscheduler_jobs", old,
                    Column("id", Unicode(191), primary_key=True),
                    Column("next_run_time", Float(25), index=True),
                    Column("job_state", LargeBinary, nullable=False),
                )  # fmt: skip
                old.create_all(conn)
                conn.execute(
                    insert(leader_table).values(
                        name="auto-update", holder="old", term=3, acquired_at=now, expires_at=now
                    )
                )
    finally:
        engine.dispose()


@pytest.mark.parametrize("runtime_tables", [True, False], ids=["with-runtime-tables", "without"])
def test_a_0001_database_upgrades_in_place(database_url: str, runtime_tables: bool) -> None:
    make_0001_database(database_url, runtime_tables=runtime_tables)
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        assert SCHEDULER_TABLES | {"apscheduler_jobs"} <= set(inspect(engine).get_table_names())
        with engine.begin() as conn:
            head = ScriptDirectory.from_config(alembic_config(conn)).get_current_head()
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head
            kinds = set(conn.scalars(select(Operation.__table__.c.kind)))
            assert kinds == {k.value for k in OperationKind}
            assert conn.scalar(select(Deployment.__table__.c.status)) == "Ready"
            if runtime_tables:
                assert conn.scalar(select(leader_table.c.term)) == 3
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                insert(Operation.__table__).values(
                    id="bad",
                    deployment_name="web",
                    kind="format-disk",
                    status="queued",
                    message="",
                    created_at=utcnow(),
                )
            )
    finally:
        engine.dispose()
