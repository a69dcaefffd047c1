"""The scheduler's tables join the schema; operation kinds get a CHECK constraint.

Until now the scheduler created its tables at run time (and APScheduler its job
table), so a database may already hold them: each is created only where missing,
with the same columns, so an existing database upgrades in place.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("create", "config", "restart", "rollback", "delete", "auto-update", "auto-update-settings")


def _kinds_check(kinds: Sequence[str]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def _create_missing(name: str, *columns: sa.Column, **kw: object) -> None:
    if not sa.inspect(op.get_bind()).has_table(name):
        op.create_table(name, *columns, **kw)


def upgrade() -> None:
    _create_missing(
        "scheduler_leader",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("term", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_leader")),
    )
    _create_missing(
        "registry_repositories",
        sa.Column("repository", sa.String(length=512), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("digests", sa.JSON(), nullable=False),
        sa.Column("etag", sa.String(length=255), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("repository", name=op.f("pk_registry_repositories")),
    )
    _create_missing(
        "auto_update_status",
        sa.Column("deployment_name", sa.String(length=63), nullable=False),
        sa.Column("repository", sa.String(length=512), nullable=True),
        sa.Column("image", sa.String(length=512), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("operation_id", sa.String(length=36), nullable=True),
        sa.Column("baseline_digest", sa.String(length=80), nullable=True),
        sa.Column("baseline_tag", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("deployment_name", name=op.f("pk_auto_update_status")),
    )
    _create_missing(
        "auto_update_bad_digests",
        sa.Column("deployment_name", sa.String(length=63), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("image", sa.String(length=512), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("deployment_name", "digest", name=op.f("pk_auto_update_bad_digests")),
    )
    if not sa.inspect(op.get_bind()).has_table("apscheduler_jobs"):
        op.create_table(
            "apscheduler_jobs",
            sa.Column("id", sa.Unicode(length=191), nullable=False),
            sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
            sa.Column("job_state", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_apscheduler_jobs")),
        )
        op.create_index(op.f("ix_apscheduler_jobs_next_run_time"), "apscheduler_jobs", ["next_run_time"])
    with op.batch_alter_table("operations") as batch:
        batch.create_check_constraint("kind", _kinds_check(KINDS))


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_constraint("ck_operations_kind", type_="check")
    for name in ("apscheduler_jobs", "auto_update_bad_digests", "auto_update_status", "registry_repositories"):
        op.drop_table(name)
    op.drop_table("scheduler_leader")
