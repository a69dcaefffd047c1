"""The query behind every request with an API key: the key, its user and the user's
teams in one statement, prepared once.

Authentication runs on every request, so it is one round trip rather than three
(the key, its user, the memberships), as rows rather than ORM objects, and built
once at import rather than per request (building a statement costs about as much
as running it on SQLite).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy.orm import Session

from persistence.models import ApiKey, TeamMember, User


class KeyRecord(msgspec.Struct, frozen=True):
    id: int
    prefix: str
    secret_hash: str
    team_id: int | None  # the team a bound key acts in
    scopes: list[str]
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    user_id: int
    user_name: str
    is_admin: bool
    tier: str
    teams: dict[int, str]  # team id -> the user's role


# In KeyRecord's order, the membership last (one row per team, or one of NULLs).
_COLUMNS = (
    ApiKey.id,
    ApiKey.prefix,
    ApiKey.secret_hash,
    ApiKey.team_id,
    ApiKey.scopes,
    ApiKey.expires_at,
    ApiKey.last_used_at,
    ApiKey.revoked_at,
    User.id,
    User.name,
    User.is_admin,
    User.tier,
    TeamMember.team_id,
    TeamMember.role,
)


def _key_query(where: ColumnElement[bool]) -> Select[Any]:
    return (
        select(*_COLUMNS)
        .join(User, User.id == ApiKey.user_id)
        .outerjoin(TeamMember, TeamMember.user_id == ApiKey.user_id)
        .where(where)
    )


_BY_PREFIX = _key_query(ApiKey.prefix == bindparam("prefix"))
_BY_ID = _key_query(ApiKey.id == bindparam("key_id"))


def _record(db: Session, query: Select[Any], params: dict[str, object]) -> KeyRecord | None:
    rows = db.connection().execute(query, params).all()
    if not rows:
        return None
    return KeyRecord(*rows[0][:12], teams={row[12]: row[13] for row in rows if row[12] is not None})


def key_by_prefix(db: Session, prefix: str) -> KeyRecord | None:
    return _record(db, _BY_PREFIX, {"prefix": prefix})


def key_by_id(db: Session, key_id: int) -> KeyRecord | None:
    return _record(db, _BY_ID, {"key_id": key_id})
