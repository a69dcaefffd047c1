"""Metrics over time: `metric_samples`, CPU and memory per service of each deployment.

Rows hang off the deployment's row id and go with it (ON DELETE CASCADE), so a
deployment re-created under a deleted one's name starts without history. See
`persistence/metrics.py` for what the columns mean.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 01:39:10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metric_samples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=63), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("span_s", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("cpu_millicores", sa.Float(), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("pods", sa.Integer(), nullable=False),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_metric_samples_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_samples")),
    )
    op.create_index("ix_metric_samples_deployment_id_at", "metric_samples", ["deployment_id", "at"])
    op.create_index("ix_metric_samples_span_s_at", "metric_samples", ["span_s", "at"])


def downgrade() -> None:
    op.drop_index("ix_metric_samples_span_s_at", table_name="metric_samples")
    op.drop_index("ix_metric_samples_deployment_id_at", table_name="metric_samples")
    op.drop_table("metric_samples")
