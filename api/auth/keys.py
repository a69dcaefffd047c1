"""Self-service API keys: a caller creates, lists and revokes keys of their own.

A caller can only mint keys no wider than the credential it uses: scopes within its
own, the same team binding if its key is bound, and, when it authenticates with an
expiring key, an expiry no later than that key's (so a leaked key cannot be used to
outlive its own expiry).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.accounts.service import expiry_from_days, issue_api_key, require_user, revoke_api_key
from api.auth.principal import Principal
from api.auth.schemas import KeyCreated, KeyOut, OwnKeyCreate, key_created, key_out
from api.errors import Forbidden
from persistence.base import utcnow
from persistence.keys import list_keys


def create_own_key(db: Session, principal: Principal, data: OwnKeyCreate, max_keys: int) -> KeyCreated:
    wider = sorted(set(data.scopes) - principal.scopes)
    if wider:
        raise Forbidden(f"Cannot grant scopes you do not have: {', '.join(wider)}")
    team_id = data.team_id
    if principal.bound_team_id is not None:
        if team_id not in (None, principal.bound_team_id):
            raise Forbidden(f"This API key is bound to team {principal.bound_team_id}")
        team_id = principal.bound_team_id
    if team_id is not None and team_id not in principal.teams:
        raise Forbidden(f"Not a member of team {team_id}")
    expires_at = expiry_from_days(data.expires_days)
    limit = principal.key_expires_at
    if limit is not None and (expires_at is None or expires_at > limit):
        expires_at = limit
    user = require_user(db, principal.user_id)
    row, plaintext = issue_api_key(
        db, user, scopes=data.scopes, name=data.name, team_id=team_id, expires_at=expires_at, max_keys=max_keys
    )
    db.commit()
    return key_created(row, plaintext, utcnow())


def list_own_keys(db: Session, principal: Principal) -> list[KeyOut]:
    now = utcnow()
    return [key_out(k, now) for k in list_keys(db, user_id=principal.user_id)]


def revoke_own_key(db: Session, principal: Principal, prefix: str) -> KeyOut:
    key = revoke_api_key(db, prefix, owner_id=principal.user_id)
    db.commit()
    return key_out(key, utcnow())
