"""Browser sessions: sign in with name and password, sign out, and who the caller is."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
from sqlalchemy.orm import Session

from api.accounts.schemas import user_out
from api.auth.credentials import (
    hash_password,
    new_csrf_token,
    new_session_token,
    password_needs_rehash,
    verify_password,
)
from api.auth.principal import Principal
from api.auth.schemas import TeamRole, WhoAmI
from api.errors import Unauthorized
from persistence.accounts import get_user, get_user_by_name
from persistence.base import utcnow
from persistence.login_sessions import add_session, delete_session, purge_expired
from persistence.models import User


class OpenedSession(msgspec.Struct, frozen=True):
    user: User
    token: str  # the cookie value; only its hash is stored
    csrf_token: str
    expires_at: datetime


def open_session(db: Session, name: str, password: str, ttl_s: int) -> OpenedSession:
    """Checks the password and stores a new session (commits); Unauthorized otherwise.

    Call in a write transaction: it reads the user, then writes the session."""
    user = get_user_by_name(db, name)
    # Verified even for unknown users, against a dummy hash: equal timing.
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise Unauthorized("Invalid user name or password")
    now = utcnow()
    if user.password_hash and password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    token, id_hash = new_session_token()
    csrf = new_csrf_token()
    expires_at = now + timedelta(seconds=ttl_s)
    add_session(db, id_hash=id_hash, user_id=user.id, csrf_token=csrf, expires_at=expires_at)
    purge_expired(db, now)
    db.commit()
    return OpenedSession(user=user, token=token, csrf_token=csrf, expires_at=expires_at)


def close_session(db: Session, principal: Principal) -> None:
    """Ends the caller's cookie session; a no-op for API keys."""
    if principal.via == "session" and principal.session_id:
        delete_session(db, principal.session_id)
        db.commit()


def who_am_i(db: Session, principal: Principal) -> WhoAmI:
    user = get_user(db, principal.user_id)
    if user is None:
        raise Unauthorized("User no longer exists")
    return WhoAmI(
        user=user_out(user),
        via=principal.via,
        scopes=sorted(principal.scopes),  # type: ignore[arg-type]
        teams=[TeamRole(team_id=t, role=r) for t, r in sorted(principal.teams.items())],  # type: ignore[arg-type]
        key_prefix=principal.key_prefix,
        bound_team_id=principal.bound_team_id,
        csrf_token=principal.csrf_token,
    )


def safe_next(target: str | None) -> str | None:
    """A same-origin path to go to after sign-in, or None.

    Only a path on this site: `//evil.example` and `https://...` would be open
    redirects; browsers read a backslash as a slash (`/\\evil.example`), and control
    characters (a tab, a newline) are dropped by browsers before parsing, so
    `/\t/evil.example` would be `//evil.example` too.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    return target
