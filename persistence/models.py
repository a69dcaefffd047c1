"""Every table of the service, as typed SQLAlchemy 2 models.

Closed vocabularies (tiers, roles, statuses, kinds; the StrEnums of
`persistence.enums`) are plain strings guarded by CHECK constraints: readable in
`psql`/`sqlite3`, and identical on both databases.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from persistence.base import Base, NullableJSON, utcnow
from persistence.enums import DeploymentStatus, OperationKind, OperationStatus, values

TIERS = ("free", "business", "enterprise")
TEAM_ROLES = ("owner", "member")
BILLING_KINDS = ("deployment.created", "deployment.deleted", "tier.changed")
DEPLOYMENT_STATUSES = values(DeploymentStatus)
VISIBILITIES = ("public", "internal")
OPERATION_STATUSES = values(OperationStatus)
OPERATION_KINDS = values(OperationKind)


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (_one_of("tier", TIERS, "tier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # NULL: the user can only authenticate with API keys (e.g. CI robots).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    tier: Mapped[str] = mapped_column(String(16), default="free")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[TeamMember]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class Team(Base):
    __tablename__ = "teams"
    __table_args__ = (_one_of("tier", TIERS, "tier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    tier: Mapped[str] = mapped_column(String(16), default="free")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[TeamMember]] = relationship(
        back_populates="team", cascade="all, delete-orphan", passive_deletes=True
    )


class TeamMember(Base):
    __tablename__ = "team_members"
    __table_args__ = (_one_of("role", TEAM_ROLES, "role"),)

    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16), default="member")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    team: Mapped[Team] = relationship(back_populates="members")
    user: Mapped[User] = relationship(back_populates="memberships")


class ApiKey(Base):
    """A bearer key. Only `prefix` (public id) and the SHA-256 of the whole key are kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100), default="")
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # A key bound to a team acts only in that team; CASCADE so a deleted team can
    # never leave behind a key that silently became unbound (wider).
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()


class LoginSession(Base):
    """A browser session. `id` is the SHA-256 of the cookie value, never the value."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)

    user: Mapped[User] = relationship()


class BillingEvent(Base):
    __tablename__ = "billing_events"
    __table_args__ = (_one_of("kind", BILLING_KINDS, "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    # SET NULL: billing history outlives the accounts it mentions.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), index=True)
    deployment_name: Mapped[str | None] = mapped_column(String(63))
    template: Mapped[str | None] = mapped_column(String(255))
    # For tier.changed: {"from": ..., "to": ...}.
    detail: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Deployment(Base):
    """Index row of one deployment (= one Pulumi stack); the spec itself lives in stack config."""

    __tablename__ = "deployments"
    __table_args__ = (
        _one_of("status", DEPLOYMENT_STATUSES, "status"),
        _one_of("visibility", VISIBILITIES, "visibility"),
        # Records of a deployment hang off its row id, so an id is never used twice
        # (SQLite would otherwise reuse the newest deleted row's; see migration 0007).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    owner_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    template: Mapped[str | None] = mapped_column(String(255))
    image: Mapped[str | None] = mapped_column(String(512))
    visibility: Mapped[str] = mapped_column(String(16), default="public")
    status: Mapped[str] = mapped_column(String(16), default="Pending")
    status_message: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    ingresses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    revision: Mapped[int] = mapped_column(default=0)
    # The stack's config file as the last successful update applied it (salt, plain
    # values, secrets as ciphertext): the config of record, on no host's disk.
    stack_config: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Operation(Base):
    """A queued change to one deployment; the worker claims, runs and finishes it.

    `payload` may hold env values, so it is set to NULL when the operation finishes.
    Not a foreign key to deployments: a delete operation outlives its deployment row.
    """

    __tablename__ = "operations"
    __table_args__ = (
        _one_of("status", OPERATION_STATUSES, "status"),
        _one_of("kind", OPERATION_KINDS, "kind"),
        # The claim query: oldest queued first.
        Index("ix_operations_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    deployment_name: Mapped[str] = mapped_column(String(63), index=True)
    # The deployment row it belongs to: a deployment created later under the same
    # name must not see this one's operations. Not a foreign key: a delete's
    # operation outlives its row.
    deployment_id: Mapped[int | None] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    payload: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    error: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text, default="")
    progress: Mapped[list[Any] | None] = mapped_column(NullableJSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    # A new one per claim: a worker's writes of the result must carry it (fencing).
    claim_token: Mapped[str | None] = mapped_column(String(36))
    heartbeat_at: Mapped[datetime | None]
    # Copied from the deployment, so its owners can still read a finished
    # operation (a delete's, say) after the deployment row is gone.
    owner_user_id: Mapped[int | None]
    team_id: Mapped[int | None]


class IdempotencyKey(Base):
    """A replayable response for `Idempotency-Key` retries, per user.

    `status_code`/`response_body` are NULL while the first request is still running.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_id_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Revision(Base):
    """One Pulumi update of a deployment's stack, numbered from 1 per deployment: the
    revision history the API serves and rollback replays. `config` is the stack config
    file the update ran with (secrets as ciphertext)."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("deployment_id", "number", name="uq_revisions_deployment_id_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    result: Mapped[str] = mapped_column(String(16))  # succeeded | failed
    message: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[str] = mapped_column(Text)
    resource_changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    operation_id: Mapped[str | None] = mapped_column(String(36))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Worker(Base):
    """A process that runs operations, and its lease: alive while `heartbeat_at` is
    recent (persistence.workers.LEASE). `host` and `pid` are for people reading the
    table; liveness is never judged by them (a pid means nothing on another host, and
    containers reuse host names and pids)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
