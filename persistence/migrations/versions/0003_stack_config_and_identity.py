"""The stack config of record and the revisions move into the database; operations and
auto-update state belong to a deployment row, not to a name; claims carry a fencing token.

`deployments.stack_config` holds the stack's config file as the last successful
update applied it, so any host can run any deployment; `revisions` holds every update
with the config it ran, so history and rollback need no pulumi process. `operations.deployment_id`,
`auto_update_status.deployment_id` and `auto_update_bad_digests.deployment_id` tie
those records to the row they were made for: a deployment created under a name
another tenant deleted sees none of them. Existing records of live deployments are
backfilled by name; those of deployments already gone stay unowned (NULL), seen by
no new deployment.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = (
    "UPDATE {table} SET deployment_id = (SELECT id FROM deployments WHERE deployments.name = {table}.deployment_name)"
)


def upgrade() -> None:
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("resource_changes", sa.JSON(), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_revisions_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revisions")),
        sa.UniqueConstraint("deployment_id", "number", name="uq_revisions_deployment_id_number"),
    )  # fmt: skip
    op.create_index(op.f("ix_revisions_deployment_id"), "revisions", ["deployment_id"])
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("stack_config", sa.Text(), nullable=True))
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("deployment_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("claim_token", sa.String(length=36), nullable=True))
        batch.create_index(batch.f("ix_operations_deployment_id"), ["deployment_id"])
    for table in ("auto_update_status", "auto_update_bad_digests"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("deployment_id", sa.Integer(), nullable=True))
    for table in ("operations", "auto_update_status", "auto_update_bad_digests"):
        op.execute(BACKFILL.format(table=table))


def downgrade() -> None:
    op.drop_index(op.f("ix_revisions_deployment_id"), table_name="revisions")
    op.drop_table("revisions")
    for table in ("auto_update_bad_digests", "auto_update_status"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("deployment_id")
    with op.batch_alter_table("operations") as batch:
        batch.drop_index(batch.f("ix_operations_deployment_id"))
        batch.drop_column("claim_token")
        batch.drop_column("deployment_id")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("stack_config")
