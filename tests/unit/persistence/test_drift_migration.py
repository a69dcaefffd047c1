"""Migration 0004 (drift): a 0003 database gains `drift_status` (tied to the deployment's
row id, gone with the deployment) and accepts the new operation kinds; it goes
back down to 0003 cleanly."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import delete, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from persistence.base import utcnow
from persistence.db import alembic_config, make_engine, migrate
from persistence.drift import DriftStatus
from persistence.enums import OperationKind
from persistence.models import Deployment, Operation, User

NEW_KINDS = (OperationKind.DRIFT_CHECK, OperationKind.RECONCILE, OperationKind.DRIFT_SETTINGS)


def _to(url: str, revision: str, *, down: bool = False) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            (command.downgrade if down else command.upgrade)(alembic_config(conn), revision)
    finally:
        engine.dispose()


def _op(op_id: str, kind: str) -> dict:
    return {
        "id": op_id,
        "deployment_name": "web",
        "kind": kind,
        "status": "queued",
        "message": "",
        "created_at": utcnow(),
    }


def test_drift_upgrades_a_0003_database_and_back(database_url: str) -> None:
    _to(database_url, "0003")
    engine = make_engine(database_url)
    now = utcnow()
    try:
        with engine.begin() as conn:
            conn.execute(insert(User.__table__).values(id=1, name="alice", is_admin=False, tier="free", created_at=now))
            conn.execute(
                insert(Deployment.__table__).values(
                    id=7, name="web", owner_user_id=1, template="nginx", visibility="public", status="Ready",
                    ingresses=[], revision=1, created_at=now, updated_at=now,
                )
            )  # fmt: skip
            conn.execute(insert(Operation.__table__).values(**_op("old", "config")))
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(Operation.__table__).values(**_op("early", "drift-check")))

        migrate(database_url)
        assert "drift_status" in inspect(engine).get_table_names()
        with engine.begin() as conn:
            for kind in NEW_KINDS:
                conn.execute(insert(Operation.__table__).values(**_op(kind.value, kind.value)))
            conn.execute(insert(DriftStatus.__table__).values(deployment_id=7, drifted=True, objects=[]))
            assert conn.scalar(select(Operation.__table__.c.kind).where(Operation.__table__.c.id == "old")) == "config"
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(Operation.__table__).values(**_op("bad", "format-disk")))
        with pytest.raises(IntegrityError), engine.begin() as conn:  # no drift row without its deployment
            conn.execute(insert(DriftStatus.__table__).values(deployment_id=99))
        with engine.begin() as conn:  # the row goes with its deployment
            conn.execute(delete(Deployment.__table__).where(Deployment.__table__.c.id == 7))
            assert conn.scalar(select(DriftStatus.__table__.c.deployment_id)) is None

        _to(database_url, "0003", down=True)
        assert "drift_status" not in inspect(engine).get_table_names()
        with engine.begin() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0003"
            assert set(conn.scalars(select(Operation.__table__.c.id))) == {"old"}
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(Operation.__table__).values(**_op("late", "reconcile")))
    finally:
        engine.dispose()
