"""Queries on the scheduler's tables (`persistence.scheduler_tables`): repository
memory, per-deployment decisions and bad digests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import (
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from persistence.base import utcnow
from persistence.scheduler_tables import bad_digests_table, repositories_table, status_table
from scheduler.policy import Decision

# --- repositories --------------------------------------------------------------


class RepositoryState(msgspec.Struct, kw_only=True):
    repository: str
    tags: list[str] = []
    digests: dict[str, str] = {}
    etag: str | None = None
    pages: int = 0
    truncated: bool = False
    polled_at: datetime | None = None
    changed_at: datetime | None = None
    error: str | None = None
    blocked_until: datetime | None = None


def _state_from_row(row: Any) -> RepositoryState:
    return RepositoryState(
        repository=row.repository,
        tags=list(row.tags or []),
        digests=dict(row.digests or {}),
        etag=row.etag,
        pages=row.pages or 0,
        truncated=bool(row.truncated),
        polled_at=row.polled_at,
        changed_at=row.changed_at,
        error=row.error,
        blocked_until=row.blocked_until,
    )


def load_repositories(session: Session, keys: Iterable[str]) -> dict[str, RepositoryState]:
    keys = list(keys)
    out: dict[str, RepositoryState] = {}
    for start in range(0, len(keys), 500):  # stay under bound-parameter limits
        chunk = keys[start : start + 500]
        for row in session.execute(select(repositories_table).where(repositories_table.c.repository.in_(chunk))):
            out[row.repository] = _state_from_row(row)
    return out


def save_repository(session: Session, state: RepositoryState) -> None:
    values = {
        "tags": state.tags,
        "digests": state.digests,
        "etag": state.etag,
        "pages": state.pages,
        "truncated": state.truncated,
        "polled_at": state.polled_at,
        "changed_at": state.changed_at,
        "error": state.error,
        "blocked_until": state.blocked_until,
    }
    t = repositories_table
    if session.execute(update(t).where(t.c.repository == state.repository).values(**values)).rowcount == 0:
        session.execute(insert(t).values(repository=state.repository, **values))


# --- per-deployment status ---------------------------------------------------------


class DeploymentStatus(msgspec.Struct, kw_only=True):
    deployment_name: str
    repository: str | None = None
    image: str | None = None
    checked_at: datetime | None = None
    action: str | None = None
    reason: str | None = None
    decision: Decision | None = None
    operation_id: str | None = None
    baseline_digest: str | None = None
    baseline_tag: str | None = None


def _status_from_row(row: Any) -> DeploymentStatus:
    decision = msgspec.convert(row.decision, Decision) if row.decision else None
    return DeploymentStatus(
        deployment_name=row.deployment_name,
        repository=row.repository,
        image=row.image,
        checked_at=row.checked_at,
        action=row.action,
        reason=row.reason,
        decision=decision,
        operation_id=row.operation_id,
        baseline_digest=row.baseline_digest,
        baseline_tag=row.baseline_tag,
    )


def load_statuses(session: Session, names: Iterable[str] | None = None) -> dict[str, DeploymentStatus]:
    t = status_table
    if names is None:
        return {r.deployment_name: _status_from_row(r) for r in session.execute(select(t))}
    names = list(names)
    out: dict[str, DeploymentStatus] = {}
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        for row in session.execute(select(t).where(t.c.deployment_name.in_(chunk))):
            out[row.deployment_name] = _status_from_row(row)
    return out


def load_status(session: Session, name: str) -> DeploymentStatus | None:
    return load_statuses(session, [name]).get(name)


def _status_values(status: DeploymentStatus) -> dict[str, Any]:
    return {
        "repository": status.repository,
        "image": status.image,
        "checked_at": status.checked_at,
        "action": status.action,
        "reason": status.reason,
        "decision": msgspec.to_builtins(status.decision) if status.decision is not None else None,
        "operation_id": status.operation_id,
        "baseline_digest": status.baseline_digest,
        "baseline_tag": status.baseline_tag,
    }


def save_status(session: Session, status: DeploymentStatus) -> None:
    values = _status_values(status)
    t = status_table
    if session.execute(update(t).where(t.c.deployment_name == status.deployment_name).values(**values)).rowcount == 0:
        session.execute(insert(t).values(deployment_name=status.deployment_name, **values))


def save_statuses(session: Session, statuses: list[DeploymentStatus], existing: set[str]) -> None:
    """Many rows in two executemany statements; `existing` names the rows that are
    already there (read earlier by the same single writer, the lease holder)."""
    t = status_table
    fresh = [
        {"deployment_name": st.deployment_name, **_status_values(st)}
        for st in statuses
        if st.deployment_name not in existing
    ]
    known = [{"key": st.deployment_name, **_status_values(st)} for st in statuses if st.deployment_name in existing]
    if fresh:
        session.execute(insert(t), fresh)
    if known:
        columns = {name: bindparam(name) for name in known[0] if name != "key"}
        session.connection().execute(update(t).where(t.c.deployment_name == bindparam("key")).values(columns), known)


def forget_deployments(session: Session, keep: Iterable[str]) -> int:
    """Drops status rows of deployments that no longer exist; bad digests are kept
    (a deployment re-created under the same name should not retry a broken image)."""
    keep = set(keep)
    names = [n for n in session.scalars(select(status_table.c.deployment_name)) if n not in keep]
    for start in range(0, len(names), 500):
        session.execute(delete(status_table).where(status_table.c.deployment_name.in_(names[start : start + 500])))
    return len(names)


# --- bad digests ---------------------------------------------------------------------


class BadDigest(msgspec.Struct, frozen=True):
    digest: str
    reason: str
    recorded_at: datetime
    image: str | None = None


def add_bad_digest(session: Session, deployment_name: str, digest: str, reason: str, image: str | None) -> None:
    t = bad_digests_table
    now = utcnow()
    values = {"reason": reason, "image": image, "recorded_at": now}
    where = (t.c.deployment_name == deployment_name) & (t.c.digest == digest)
    if session.execute(update(t).where(where).values(**values)).rowcount == 0:
        session.execute(insert(t).values(deployment_name=deployment_name, digest=digest, **values))


def bad_digests(session: Session, names: Iterable[str]) -> dict[str, dict[str, BadDigest]]:
    """deployment name -> digest -> why it is never retried."""
    t = bad_digests_table
    names = list(names)
    out: dict[str, dict[str, BadDigest]] = {}
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        for row in session.execute(select(t).where(t.c.deployment_name.in_(chunk))):
            out.setdefault(row.deployment_name, {})[row.digest] = BadDigest(
                digest=row.digest, reason=row.reason, recorded_at=row.recorded_at, image=row.image
            )
    return out
