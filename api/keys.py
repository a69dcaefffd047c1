"""Self-service API keys: `POST /api/keys`, `GET /api/keys`, `POST /api/keys/{prefix}/revoke`.

A caller can only mint keys no wider than the credential it uses: scopes within its
own, the same team binding if its key is bound, and, when it authenticates with an
expiring key, an expiry no later than that key's (so a leaked key cannot be used to
outlive its own expiry).
"""

from __future__ import annotations

from litestar import get, post
from litestar.params import FromPath, JSONBody

from api.accounts import expiry_from_days, issue_api_key, require_user, revoke_api_key
from api.auth import CurrentPrincipal, require_authenticated
from api.dependencies import DbSession
from api.errors import AUTH_ERRORS, ApiError
from api.schemas_auth import KeyCreated, KeyOut, OwnKeyCreate, key_created, key_out
from persistence.base import utcnow
from persistence.keys import list_keys

_GUARDS = [require_authenticated()]


@post(
    "/api/keys",
    guards=_GUARDS,
    responses=AUTH_ERRORS,
    status_code=201,
    sync_to_thread=True,
    tags=["keys"],
    summary="Create an API key for yourself; the key is in this response only",
)
def create_own_key(data: JSONBody[OwnKeyCreate], principal: CurrentPrincipal, db_session: DbSession) -> KeyCreated:
    wider = sorted(set(data.scopes) - principal.scopes)
    if wider:
        raise ApiError(403, "forbidden", f"Cannot grant scopes you do not have: {', '.join(wider)}")
    team_id = data.team_id
    if principal.bound_team_id is not None:
        if team_id not in (None, principal.bound_team_id):
            raise ApiError(403, "forbidden", f"This API key is bound to team {principal.bound_team_id}")
        team_id = principal.bound_team_id
    if team_id is not None and team_id not in principal.teams:
        raise ApiError(403, "forbidden", f"Not a member of team {team_id}")
    expires_at = expiry_from_days(data.expires_days)
    limit = principal.key_expires_at
    if limit is not None and (expires_at is None or expires_at > limit):
        expires_at = limit
    user = require_user(db_session, principal.user_id)
    row, plaintext = issue_api_key(
        db_session, user, scopes=data.scopes, name=data.name, team_id=team_id, expires_at=expires_at
    )
    db_session.commit()
    return key_created(row, plaintext, utcnow())


@get(
    "/api/keys",
    guards=_GUARDS,
    responses=AUTH_ERRORS,
    sync_to_thread=True,
    tags=["keys"],
    summary="Your API keys (prefixes and metadata, never the keys)",
)
def list_own_keys(principal: CurrentPrincipal, db_session: DbSession) -> list[KeyOut]:
    now = utcnow()
    return [key_out(k, now) for k in list_keys(db_session, user_id=principal.user_id)]


@post(
    "/api/keys/{prefix:str}/revoke",
    guards=_GUARDS,
    responses=AUTH_ERRORS,
    status_code=200,
    sync_to_thread=True,
    tags=["keys"],
    summary="Revoke one of your API keys",
)
def revoke_own_key(prefix: FromPath[str], principal: CurrentPrincipal, db_session: DbSession) -> KeyOut:
    key = revoke_api_key(db_session, prefix, owner_id=principal.user_id)
    db_session.commit()
    return key_out(key, utcnow())


ROUTES = [create_own_key, list_own_keys, revoke_own_key]
