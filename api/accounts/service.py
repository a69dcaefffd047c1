"""Account operations shared by the admin API, self-service routes and the CLI.

Each function works inside the caller's transaction (flush, no commit) and raises
domain errors (api.errors) for anything the caller did wrong, so HTTP and CLI report the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from api.auth.credentials import hash_password, new_api_key
from api.auth.principal import ADMIN, ALL_SCOPES, READ, WRITE
from api.errors import Conflict, Invalid, NotFound
from persistence import accounts as q
from persistence.base import utcnow
from persistence.billing import record_billing_event
from persistence.db import BOOTSTRAP_LOCK_ID, one_at_a_time
from persistence.keys import add_key, count_live_keys, get_key_by_prefix, revoke_key
from persistence.models import TEAM_ROLES, TIERS, ApiKey, Team, TeamMember, User


def require_user(db: Session, user_id: int) -> User:
    user = q.get_user(db, user_id)
    if user is None:
        raise NotFound(f"User {user_id} not found")
    return user


def require_user_by_name(db: Session, name: str) -> User:
    user = q.get_user_by_name(db, name)
    if user is None:
        raise NotFound(f"User '{name}' not found")
    return user


def require_team(db: Session, team_id: int) -> Team:
    team = q.get_team(db, team_id)
    if team is None:
        raise NotFound(f"Team {team_id} not found")
    return team


def require_team_by_name(db: Session, name: str) -> Team:
    team = q.get_team_by_name(db, name)
    if team is None:
        raise NotFound(f"Team '{name}' not found")
    return team


def _check_tier(tier: str) -> None:
    if tier not in TIERS:
        raise Invalid(f"tier must be one of {', '.join(TIERS)}", "bad_request")


def create_user(db: Session, name: str, *, password: str | None, is_admin: bool = False, tier: str = "free") -> User:
    _check_tier(tier)
    if q.get_user_by_name(db, name) is not None:
        raise Conflict(f"User name '{name}' is taken")
    password_hash = hash_password(password) if password is not None else None
    return q.add_user(db, name, password_hash=password_hash, is_admin=is_admin, tier=tier)


def create_team(db: Session, name: str, *, owner: User, tier: str = "free") -> Team:
    _check_tier(tier)
    if q.get_team_by_name(db, name) is not None:
        raise Conflict(f"Team name '{name}' is taken")
    return q.add_team(db, name, owner_id=owner.id, tier=tier)


def set_team_member(db: Session, team: Team, user: User, role: str) -> TeamMember:
    if role not in TEAM_ROLES:
        raise Invalid(f"role must be one of {', '.join(TEAM_ROLES)}", "bad_request")
    current = q.get_membership(db, team.id, user.id)
    if current is not None and current.role == "owner" and role != "owner":
        _keep_an_owner(db, team)
    return q.set_membership(db, team.id, user.id, role)


def remove_team_member(db: Session, team: Team, user: User) -> None:
    current = q.get_membership(db, team.id, user.id)
    if current is None:
        raise NotFound(f"User {user.id} is not a member of team {team.id}")
    if current.role == "owner":
        _keep_an_owner(db, team)
    q.remove_membership(db, team.id, user.id)


def _keep_an_owner(db: Session, team: Team) -> None:
    # The team's row locked first: two owners removed at once are counted in turn,
    # so one of them stays (PostgreSQL; SQLite's immediate transaction is one writer).
    q.lock_team(db, team.id)
    if q.count_owners(db, team.id) <= 1:
        raise Conflict(f"Team '{team.name}' must keep at least one owner")


def change_user_tier(db: Session, user: User, tier: str) -> bool:
    """Set the tier and bill the change; False (and no event) if it was already that tier."""
    _check_tier(tier)
    if user.tier == tier:
        return False
    record_billing_event(db, "tier.changed", user_id=user.id, detail={"from": user.tier, "to": tier})
    user.tier = tier
    db.flush()
    return True


def change_team_tier(db: Session, team: Team, tier: str, *, actor: User | None = None) -> bool:
    _check_tier(tier)
    if team.tier == tier:
        return False
    record_billing_event(
        db,
        "tier.changed",
        user_id=actor.id if actor else None,
        team_id=team.id,
        detail={"from": team.tier, "to": tier},
    )
    team.tier = tier
    db.flush()
    return True


def issue_api_key(
    db: Session,
    user: User,
    *,
    scopes: Iterable[str],
    name: str = "",
    team_id: int | None = None,
    expires_at: datetime | None = None,
    max_keys: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the full key, which exists nowhere else.
    `max_keys`: the live keys the user may hold (None: no cap, for the operator's
    own tools)."""
    wanted = sorted(set(scopes))
    if not wanted:
        raise Invalid("A key needs at least one scope", "bad_request")
    unknown = [s for s in wanted if s not in ALL_SCOPES]
    if unknown:
        raise Invalid(f"Unknown scopes: {', '.join(unknown)}", "bad_request")
    if ADMIN in wanted and not user.is_admin:
        raise Invalid(f"User '{user.name}' is not an admin", "bad_request")
    if team_id is not None:
        require_team(db, team_id)
        if q.get_membership(db, team_id, user.id) is None:
            raise Invalid(f"User '{user.name}' is not in team {team_id}", "bad_request")
    if expires_at is not None and expires_at <= utcnow():
        raise Invalid("Expiry must be in the future", "bad_request")
    if max_keys is not None:
        # The user's row locked (PostgreSQL; SQLite's immediate transaction is one
        # writer already): requests at once for the last slot count one at a time.
        q.lock_user(db, user.id)
        if count_live_keys(db, user.id, utcnow()) >= max_keys:
            raise Conflict(
                f"User '{user.name}' already holds {max_keys} live API keys, the most one user may "
                "(SHIPSTACK_MAX_API_KEYS): revoke one first",
                "key_limit",
            )
    plaintext, prefix, secret_hash = new_api_key()
    row = add_key(
        db,
        prefix=prefix,
        secret_hash=secret_hash,
        name=name,
        user_id=user.id,
        team_id=team_id,
        scopes=wanted,
        expires_at=expires_at,
    )
    return row, plaintext


def expiry_from_days(days: int | None) -> datetime | None:
    return utcnow() + timedelta(days=days) if days is not None else None


def revoke_api_key(db: Session, prefix: str, *, owner_id: int | None = None) -> ApiKey:
    """Revoke by public prefix; with `owner_id`, someone else's key is reported missing."""
    key = get_key_by_prefix(db, prefix)
    if key is None or (owner_id is not None and key.user_id != owner_id):
        raise NotFound(f"API key '{prefix}' not found")
    revoke_key(db, key, utcnow())
    return key


BOOTSTRAP_SCOPES = (READ, WRITE, ADMIN)


def bootstrap_admin(db: Session, name: str = "admin") -> tuple[User, str] | None:
    """On a database with no users: the first admin and a full-scope key, else None.
    Replicas starting at once take turns, so one creates it and the rest find it."""
    one_at_a_time(db.connection(), BOOTSTRAP_LOCK_ID)
    if q.count_users(db) > 0:
        return None
    user = create_user(db, name, password=None, is_admin=True)
    _, plaintext = issue_api_key(db, user, scopes=BOOTSTRAP_SCOPES, name="bootstrap")
    return user, plaintext
