"""Migration 0007: deployment row ids are never handed out twice. On SQLite the table
is rebuilt with AUTOINCREMENT, keeping every row that points at a deployment (the
rebuild must not cascade), and the next id comes after every deployment id any table
recorded, also those of deployments deleted before the upgrade."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from persistence.base import utcnow
from persistence.db import alembic_config, make_engine, migrate
from persistence.drift import DriftStatus
from persistence.metrics import MetricSample
from persistence.models import Deployment, Operation, Revision, User
from persistence.scheduler_tables import status_table

GONE_ID = 9  # a deployment deleted before the upgrade: its operation and auto-update status remain


def _to_0006(url: str) -> Engine:
    engine = make_engine(url)
    with engine.connect() as conn, conn.begin():
        command.upgrade(alembic_config(conn), "0006")
    return engine


def _fill(engine: Engine) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(User.__table__).values(id=1, name="alice", is_admin=False, tier="free", created_at=now))
        for row_id in (1, 2, 3):
            conn.execute(
                insert(Deployment.__table__).values(
                    id=row_id, name=f"web{row_id}", owner_user_id=1, template="nginx", visibility="public",
                    status="Ready", ingresses=[], revision=1, created_at=now, updated_at=now, stack_config="cfg",
                )
            )  # fmt: skip
            conn.execute(
                insert(Revision.__table__).values(
                    deployment_id=row_id, number=1, result="succeeded", message="create", config="cfg",
                    resource_changes={}, started_at=now,
                )
            )  # fmt: skip
            conn.execute(insert(DriftStatus.__table__).values(deployment_id=row_id, drifted=False, objects=[]))
            conn.execute(
                insert(MetricSample.__table__).values(
                    deployment_id=row_id, service="nginx", at=now, span_s=0, samples=1, cpu_millicores=1.0,
                    memory_bytes=1, pods=1, restarts=0,
                )
            )  # fmt: skip
        conn.execute(
            insert(Operation.__table__).values(
                id="op-gone", deployment_name="old", deployment_id=GONE_ID, kind="delete", status="succeeded",
                message="delete", created_at=now, owner_user_id=1,
            )
        )  # fmt: skip
        conn.execute(insert(status_table).values(deployment_name="old", deployment_id=GONE_ID, action="none"))


def _count(engine: Engine, table: type) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table.__table__)) or 0


def test_the_upgrade_keeps_every_row_and_never_reuses_an_id(database_url: str) -> None:
    engine = _to_0006(database_url)
    try:
        _fill(engine)
        migrate(database_url)
        # Nothing that points at a deployment went with the rebuilt table.
        for table in (Deployment, Revision, DriftStatus, MetricSample):
            assert _count(engine, table) == 3, table.__tablename__
        with engine.connect() as conn:
            assert conn.scalar(select(Deployment.__table__.c.stack_config).where(Deployment.__table__.c.id == 2)) == (
                "cfg"
            )
        with pytest.raises(IntegrityError), engine.begin() as conn:  # the CHECKs survived the rebuild
            conn.execute(
                insert(Deployment.__table__).values(
                    name="bad", owner_user_id=1, visibility="public", status="Sleeping", ingresses=[], revision=0,
                    created_at=utcnow(), updated_at=utcnow(),
                )
            )  # fmt: skip
        with pytest.raises(IntegrityError), engine.begin() as conn:  # and the unique name
            conn.execute(
                insert(Deployment.__table__).values(
                    name="web1", owner_user_id=1, visibility="public", status="Ready", ingresses=[], revision=0,
                    created_at=utcnow(), updated_at=utcnow(),
                )
            )  # fmt: skip
        if engine.dialect.name != "sqlite":
            return  # PostgreSQL: the sequence has always been enough
        with engine.begin() as conn:  # the newest row goes, and a new one comes
            conn.execute(delete(Deployment.__table__).where(Deployment.__table__.c.id == 3))
            new_id = conn.execute(
                insert(Deployment.__table__).values(
                    name="web3",
                    owner_user_id=1,
                    visibility="public",
                    status="Pending",
                    ingresses=[],
                    revision=0,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            ).inserted_primary_key[0]
        assert new_id > GONE_ID, f"id {new_id} was already used by a deployment"
        assert _count(engine, Revision) == 2  # foreign keys are on again: the delete cascaded
    finally:
        engine.dispose()


def test_sqlite_refuses_the_rebuild_with_foreign_keys_on(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/fk.db"
    engine = _to_0006(url)
    try:
        _fill(engine)
        with (
            pytest.raises(RuntimeError, match="foreign keys off"),
            engine.connect() as conn,
            conn.begin(),
        ):  # a plain connection keeps them on
            command.upgrade(alembic_config(conn), "0007")
        assert _count(engine, Revision) == 3
    finally:
        engine.dispose()
