"""Drift detection: the `drift_status` table, and operation kinds drift-check,
reconcile and drift-settings in the operations.kind CHECK constraint.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = ("create", "config", "restart", "rollback", "delete", "auto-update", "auto-update-settings")
KINDS = (*OLD_KINDS, "drift-check", "reconcile", "drift-settings")


def _kinds_check(kinds: Sequence[str]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def _replace_kinds_check(kinds: Sequence[str]) -> None:
    # Batch mode: SQLite cannot alter a CHECK constraint, so the table is rebuilt.
    with op.batch_alter_table("operations") as batch:
        batch.drop_constraint(op.f("ck_operations_kind"), type_="check")
        batch.create_check_constraint("kind", _kinds_check(kinds))


def upgrade() -> None:
    op.create_table(
        "drift_status",
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("drifted", sa.Boolean(), nullable=True),
        sa.Column("objects", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("operation_id", sa.String(length=36), nullable=True),
        sa.Column("reconcile_operation_id", sa.String(length=36), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("skipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_drift_status_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("deployment_id", name=op.f("pk_drift_status")),
    )
    _replace_kinds_check(KINDS)


def downgrade() -> None:
    # Operations of the new kinds cannot stay under the old constraint.
    op.execute(sa.text("DELETE FROM operations WHERE kind IN ('drift-check', 'reconcile', 'drift-settings')"))
    _replace_kinds_check(OLD_KINDS)
    op.drop_table("drift_status")
