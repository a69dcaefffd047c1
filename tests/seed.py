"""Test helpers shared by the API tests (importable, unlike conftest)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from api.accounts import service as accounts
from api.auth.principal import READ, WRITE
from persistence.base import utcnow
from persistence.models import ApiKey, Deployment, Team, User

# The `make_client` fixture: settings (and extra route handlers) -> a started client.
MakeClient = Callable[..., TestClient[Litestar]]


class Seed:
    """Creates accounts through the same service functions the API and CLI use."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def user(self, name: str, *, admin: bool = False, password: str | None = None, tier: str = "free") -> User:
        with self.factory() as db:
            user = accounts.create_user(db, name, password=password, is_admin=admin, tier=tier)
            db.commit()
            return user

    def team(self, name: str, owner: User, *, members: Sequence[User] = (), tier: str = "free") -> Team:
        with self.factory() as db:
            team = accounts.create_team(db, name, owner=owner, tier=tier)
            for member in members:
                accounts.set_team_member(db, team, member, "member")
            db.commit()
            return team

    def key(
        self,
        user: User,
        scopes: Sequence[str] = (READ, WRITE),
        *,
        team: Team | None = None,
        expired: bool = False,
        revoked: bool = False,
        expires_at: datetime | None = None,
    ) -> str:
        with self.factory() as db:
            row, plaintext = accounts.issue_api_key(
                db, db.get(User, user.id), scopes=scopes, team_id=team.id if team else None, expires_at=expires_at
            )
            if expired:
                row.expires_at = utcnow() - timedelta(minutes=1)
            if revoked:
                row.revoked_at = utcnow()
            db.commit()
            return plaintext

    def deployment(self, name: str, owner: User, *, team: Team | None = None, **fields: Any) -> Deployment:
        with self.factory() as db:
            row = Deployment(
                name=name, owner_user_id=owner.id, team_id=team.id if team else None, template="nginx", **fields
            )
            db.add(row)
            db.commit()
            return row

    def expire_key(self, prefix: str) -> None:
        with self.factory() as db:
            db.execute(update(ApiKey).where(ApiKey.prefix == prefix).values(expires_at=utcnow() - timedelta(seconds=1)))
            db.commit()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
