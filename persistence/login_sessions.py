"""Queries for browser login sessions (the `sessions` table)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, joinedload

from persistence.models import LoginSession


def add_session(session: Session, *, id_hash: str, user_id: int, csrf_token: str, expires_at: datetime) -> LoginSession:
    row = LoginSession(id=id_hash, user_id=user_id, csrf_token=csrf_token, expires_at=expires_at)
    session.add(row)
    session.flush()
    return row


def get_session(session: Session, id_hash: str) -> LoginSession | None:
    query = select(LoginSession).options(joinedload(LoginSession.user))
    return session.scalar(query.where(LoginSession.id == id_hash))


def delete_session(session: Session, id_hash: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.id == id_hash))


def purge_expired(session: Session, now: datetime) -> int:
    result = session.execute(delete(LoginSession).where(LoginSession.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)
