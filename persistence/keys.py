"""Queries for API keys. Rows hold a public prefix and a hash, never the key itself."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, joinedload

from persistence.models import ApiKey


def add_key(
    session: Session,
    *,
    prefix: str,
    secret_hash: str,
    name: str,
    user_id: int,
    scopes: list[str],
    team_id: int | None = None,
    expires_at: datetime | None = None,
) -> ApiKey:
    key = ApiKey(
        prefix=prefix,
        secret_hash=secret_hash,
        name=name,
        user_id=user_id,
        team_id=team_id,
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    return key


def get_key_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    """The key with its user loaded (authentication needs both)."""
    query = select(ApiKey).options(joinedload(ApiKey.user)).where(ApiKey.prefix == prefix)
    return session.scalar(query)


def list_keys(session: Session, *, user_id: int | None = None) -> list[ApiKey]:
    query = select(ApiKey).options(joinedload(ApiKey.user)).order_by(ApiKey.id)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return list(session.scalars(query))


def count_live_keys(session: Session, user_id: int, now: datetime) -> int:
    """The user's keys that still authenticate: not revoked, not expired."""
    live = (ApiKey.user_id == user_id) & ApiKey.revoked_at.is_(None)
    live &= ApiKey.expires_at.is_(None) | (ApiKey.expires_at > now)
    return session.scalar(select(func.count()).select_from(ApiKey).where(live)) or 0


def revoke_key(session: Session, key: ApiKey, now: datetime) -> None:
    """Idempotent: the first revocation time is the one kept."""
    if key.revoked_at is None:
        key.revoked_at = now
        session.flush()


def touch_key(session: Session, key_id: int, now: datetime, *, min_interval: timedelta) -> None:
    """Record use, at most once per `min_interval`, so auth is not a write per request."""
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - min_interval))
        .values(last_used_at=now)
    )
