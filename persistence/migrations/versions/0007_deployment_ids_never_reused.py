"""A deployment row's id is never handed out twice, on SQLite too.

Operations, the auto-update scheduler's records, drift results and metric samples
belong to a deployment by its row id, so that a deployment created under a deleted
one's name starts with none of them. PostgreSQL's sequence never repeats an id;
SQLite without AUTOINCREMENT gives a new row the largest id in use plus one, so a
deployment created after the newest one was deleted got that one's id, and with it
its operations and auto-update state (another tenant's). SQLite cannot add
AUTOINCREMENT to a table, so `deployments` is rebuilt with it, and its counter
starts above every deployment id any table has recorded.

The rebuild drops the old table: with foreign keys enforced that would delete every
revision, drift record and metric sample of every deployment (ON DELETE CASCADE), so
it refuses to run unless they are off; `persistence.db.migrate` and the alembic CLI
(`env.py`) turn them off around migrations and check them before the commit.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "id", "name", "owner_user_id", "team_id", "template", "image", "visibility", "status", "status_message",
    "last_error", "ingresses", "revision", "created_at", "updated_at", "stack_config",
)  # fmt: skip
# Every column that holds a deployment row's id.
HOLDERS = (
    ("deployments", "id"),
    ("operations", "deployment_id"),
    ("auto_update_status", "deployment_id"),
    ("auto_update_bad_digests", "deployment_id"),
    ("revisions", "deployment_id"),
    ("drift_status", "deployment_id"),
    ("metric_samples", "deployment_id"),
)


def _create_new_table(name: str) -> None:
    """`deployments` as 0001 and 0003 made it, with AUTOINCREMENT."""
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("owner_user_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("template", sa.String(length=255), nullable=True),
        sa.Column("image", sa.String(length=512), nullable=True),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("ingresses", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stack_config", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('Pending', 'Provisioning', 'Ready', 'Error', 'Deleting')", name=op.f("ck_deployments_status")
        ),
        sa.CheckConstraint("visibility IN ('public', 'internal')", name=op.f("ck_deployments_visibility")),
        sa.ForeignKeyConstraint(["owner_user_id"], ["users.id"], name=op.f("fk_deployments_owner_user_id_users")),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_deployments_team_id_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_deployments_name")),
        sqlite_autoincrement=True,
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return  # a PostgreSQL sequence never hands out an id twice
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "migration 0007 rebuilds the deployments table and must run with SQLite's foreign keys off "
            "(persistence.db.migrate and the alembic CLI turn them off): with them on, dropping the old table "
            "would delete every revision, drift record and metric sample"
        )
    _create_new_table("_deployments_new")
    columns = ", ".join(COLUMNS)
    op.execute(f"INSERT INTO _deployments_new ({columns}) SELECT {columns} FROM deployments")
    op.execute("DROP TABLE deployments")
    op.execute("ALTER TABLE _deployments_new RENAME TO deployments")
    op.create_index("ix_deployments_owner_user_id", "deployments", ["owner_user_id"])
    op.create_index("ix_deployments_team_id", "deployments", ["team_id"])
    highest = " UNION ALL ".join(f"SELECT MAX({column}) AS id FROM {table}" for table, column in HOLDERS)
    op.execute("DELETE FROM sqlite_sequence WHERE name = 'deployments'")
    op.execute(f"INSERT INTO sqlite_sequence (name, seq) SELECT 'deployments', COALESCE(MAX(id), 0) FROM ({highest})")


def downgrade() -> None:
    # The rebuilt table serves the 0006 schema as it is; ids stay unique.
    pass
