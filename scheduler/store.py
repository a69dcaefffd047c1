"""Queries on the scheduler's tables (`persistence.scheduler_tables`): repository
memory, per-deployment decisions and bad digests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from persistence.base import utcnow
from persistence.models import Deployment
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


def _owned(table: Table) -> ColumnElement[bool]:
    """Rows made for the deployment that has the name now: a deployment re-created
    under a deleted one's name (another tenant's, maybe) sees none of its records."""
    return table.c.deployment_id == _row_id(table.c.deployment_name)


def _stale(table: Table) -> ColumnElement[bool]:
    """Rows of no deployment that exists now (NULL-safe: no row id means stale)."""
    current = _row_id(table.c.deployment_name)
    return or_(table.c.deployment_id.is_(None), current.is_(None), table.c.deployment_id != current)


def _row_id(name: Any) -> Any:
    return select(Deployment.id).where(Deployment.name == name).scalar_subquery()


def load_statuses(session: Session, names: Iterable[str] | None = None) -> dict[str, DeploymentStatus]:
    t = status_table
    if names is None:
        return {r.deployment_name: _status_from_row(r) for r in session.execute(select(t).where(_owned(t)))}
    names = list(names)
    out: dict[str, DeploymentStatus] = {}
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        for row in session.execute(select(t).where(t.c.deployment_name.in_(chunk), _owned(t))):
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
    save_statuses(session, [status])


def save_statuses(session: Session, statuses: list[DeploymentStatus]) -> None:
    """Many rows in two executemany statements (the poll writes hundreds at once); each
    row is stamped with the id of the deployment that has its name now."""
    t = status_table
    names = [st.deployment_name for st in statuses]
    present: set[str] = set()
    for start in range(0, len(names), 500):
        present.update(
            session.scalars(select(t.c.deployment_name).where(t.c.deployment_name.in_(names[start : start + 500])))
        )
    rows = [{"key": st.deployment_name, **_status_values(st)} for st in statuses]
    columns = {name: bindparam(name) for name in _status_values(DeploymentStatus(deployment_name=""))}
    columns["deployment_id"] = _row_id(bindparam("key"))
    fresh = [r for r in rows if r["key"] not in present]
    known = [r for r in rows if r["key"] in present]
    connection = session.connection()
    if fresh:
        connection.execute(insert(t).values(deployment_name=bindparam("key"), **columns), fresh)
    if known:
        connection.execute(update(t).where(t.c.deployment_name == bindparam("key")).values(columns), known)


def forget_deployments(session: Session) -> int:
    """Drops the records of deployments that no longer exist (statuses and bad digests:
    a deployment re-created under the same name starts clean)."""
    dropped = session.execute(
        delete(status_table).where(~_owned(status_table) | status_table.c.deployment_id.is_(None))
    )
    session.execute(
        delete(bad_digests_table).where(~_owned(bad_digests_table) | bad_digests_table.c.deployment_id.is_(None))
    )
    return dropped.rowcount or 0


# --- bad digests ---------------------------------------------------------------------


class BadDigest(msgspec.Struct, frozen=True):
    digest: str
    reason: str
    recorded_at: datetime
    image: str | None = None


def add_bad_digest(session: Session, deployment_name: str, digest: str, reason: str, image: str | None) -> None:
    t = bad_digests_table
    now = utcnow()
    values = {"reason": reason, "image": image, "recorded_at": now, "deployment_id": _row_id(deployment_name)}
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
        for row in session.execute(select(t).where(t.c.deployment_name.in_(chunk), _owned(t))):
            out.setdefault(row.deployment_name, {})[row.digest] = BadDigest(
                digest=row.digest, reason=row.reason, recorded_at=row.recorded_at, image=row.image
            )
    return out
