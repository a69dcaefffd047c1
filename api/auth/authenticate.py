"""Turn request credentials into a `Principal` (blocking database code; run in a thread).

A bearer key wins over a session cookie: it is the explicit credential, and browsers
never attach it on their own, which is why key requests need no CSRF token.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from api.auth import repo
from api.auth.credentials import hashes_equal, key_prefix, sha256_hex
from api.auth.principal import Principal, user_scopes
from api.errors import Unauthorized
from persistence.accounts import roles_for_user
from persistence.base import utcnow
from persistence.keys import touch_key
from persistence.login_sessions import get_session
from persistence.models import LoginSession, User

log = logging.getLogger("shipstack.api.auth")

# last_used_at is informational; recording it at most once a minute keeps
# authentication read-only for nearly every request: the key's row says when it was
# last recorded, and only then is there an UPDATE (on SQLite even an UPDATE that
# matches no row takes the write lock, so a read would wait behind the runner's
# writes).
TOUCH_INTERVAL = timedelta(seconds=60)
_TOUCHING = threading.Lock()
# key prefix (random, unlike a row id that another database may give another key) ->
# when this process last recorded the key's use (monotonic)
_touched: dict[str, float] = {}


def authenticate(
    factory: sessionmaker[Session],
    authorization: str | None,
    session_token: str | None,
    *,
    optional: bool = False,
) -> Principal | None:
    """The caller, or None when no credential was sent.

    Raises `Unauthorized` for a bad bearer key, and for a bad session cookie unless
    `optional` (a stale cookie on a page that also works anonymously is not an error).
    """
    now = utcnow()
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Authorization header must be 'Bearer <API key>'")
        principal, last_used_at = _from_key(factory, value.strip(), now)
        if (last_used_at is None or last_used_at < now - TOUCH_INTERVAL) and _due(principal.key_prefix):
            _touch(factory, principal, now)
        return principal
    if session_token:
        try:
            return _from_session(factory, session_token, now)
        except Unauthorized:
            if optional:
                return None
            raise
    return None


def _from_key(factory: sessionmaker[Session], raw: str, now: datetime) -> tuple[Principal, datetime | None]:
    """The key's principal, and when the key was last recorded as used."""
    prefix = key_prefix(raw)
    if prefix is None:
        raise Unauthorized("Invalid API key")
    with factory() as db:
        record = repo.key_by_prefix(db, prefix)
    if record is None or not hashes_equal(record.secret_hash, sha256_hex(raw)):
        raise Unauthorized("Invalid API key")
    return _key_principal(record, now), record.last_used_at


def _key_principal(record: repo.KeyRecord, now: datetime) -> Principal:
    # Specific reasons only once the caller has proven they hold the whole key.
    if record.revoked_at is not None:
        raise Unauthorized("API key revoked")
    if record.expires_at is not None and record.expires_at <= now:
        raise Unauthorized("API key expired")
    return Principal(
        user_id=record.user_id,
        user_name=record.user_name,
        is_admin=record.is_admin,
        tier=record.tier,
        scopes=frozenset(record.scopes) & user_scopes(record.is_admin),
        teams=record.teams,
        via="key",
        key_id=record.id,
        key_prefix=record.prefix,
        key_expires_at=record.expires_at,
        bound_team_id=record.team_id,
    )


def _from_session(factory: sessionmaker[Session], token: str, now: datetime) -> Principal:
    with factory() as db:
        return _session_principal(db, get_session(db, sha256_hex(token)), now)


def _session_principal(db: Session, row: LoginSession | None, now: datetime) -> Principal:
    if row is None:
        raise Unauthorized("Not logged in")
    if row.expires_at <= now:
        raise Unauthorized("Session expired, log in again")
    return _principal(db, row.user, None, via="session", session_id=row.id, csrf_token=row.csrf_token)


def _principal(db: Session, user: User, key_scopes: frozenset[str] | None, **credential: Any) -> Principal:
    """The user with their rights now: a key's scopes narrowed to what the user may
    still do (a demoted admin's old key loses `admin` at once), their teams."""
    allowed = user_scopes(user.is_admin)
    return Principal(
        user_id=user.id,
        user_name=user.name,
        is_admin=user.is_admin,
        tier=user.tier,
        scopes=allowed if key_scopes is None else key_scopes & allowed,
        teams=roles_for_user(db, user.id),
        **credential,
    )


def reauthenticate(db: Session, principal: Principal) -> Principal | None:
    """The caller as the database sees them now (scopes, teams), or None once the
    credential is revoked, expired or gone: for streams that outlive the request
    that opened them."""
    try:
        if principal.via == "key" and principal.key_id is not None:
            record = repo.key_by_id(db, principal.key_id)
            return None if record is None else _key_principal(record, utcnow())
        if principal.session_id is not None:
            return _session_principal(db, db.get(LoginSession, principal.session_id), utcnow())
    except Unauthorized:
        return None
    return None


def _due(key_prefix: str | None) -> bool:
    """True for one request per key and TOUCH_INTERVAL in this process: of the requests
    a new key starts with at once, one writes last_used_at, not all of them."""
    if key_prefix is None:
        return False
    now = time.monotonic()
    with _TOUCHING:
        if now - _touched.get(key_prefix, -math.inf) < TOUCH_INTERVAL.total_seconds():
            return False
        _touched[key_prefix] = now
        if len(_touched) > 100_000:  # bounded: forgetting only costs one more UPDATE
            _touched.clear()
        return True


def _touch(factory: sessionmaker[Session], principal: Principal, now: datetime) -> None:
    """Separate short write transaction; a busy database must not fail the request."""
    if principal.key_id is None:
        return
    try:
        with factory() as db:
            touch_key(db, principal.key_id, now, min_interval=TOUCH_INTERVAL)
            db.commit()
    except OperationalError:
        log.warning("could not record last use of API key %s", principal.key_prefix)
