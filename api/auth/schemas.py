"""Request and response bodies of sign-in, the caller's identity and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from api.accounts.schemas import Role, Scope, UserOut
from api.ids import Id
from persistence.models import ApiKey

KeyName = Annotated[str, Meta(max_length=100)]
ExpiresDays = Annotated[int, Meta(ge=1, le=3650)]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=False):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    password: Annotated[str, Meta(min_length=1, max_length=1024)]
    # Form posts only: where to redirect after login (a local path).
    next: str | None = None


class LoginResponse(msgspec.Struct):
    user: UserOut
    csrf_token: str
    expires_at: datetime


class TeamRole(msgspec.Struct):
    team_id: int
    role: Role


class WhoAmI(msgspec.Struct):
    user: UserOut
    via: Literal["key", "session"]
    scopes: list[Scope]
    teams: list[TeamRole]
    key_prefix: str | None = None
    bound_team_id: int | None = None
    # Only for cookie sessions: the token unsafe requests must echo back.
    csrf_token: str | None = None


class OwnKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    scopes: Annotated[list[Scope], Meta(min_length=1)]
    name: KeyName = ""
    expires_days: ExpiresDays | None = None
    team_id: Id | None = None


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Id
    scopes: Annotated[list[Scope], Meta(min_length=1)]
    name: KeyName = ""
    expires_days: ExpiresDays | None = None
    team_id: Id | None = None


class KeyOut(msgspec.Struct, kw_only=True):
    prefix: str
    name: str
    user_id: int
    user_name: str
    team_id: int | None
    scopes: list[Scope]
    status: Literal["active", "expired", "revoked"]
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class KeyCreated(KeyOut, kw_only=True):
    # The full key. Returned by the create call only; it cannot be recovered later.
    key: str


class Health(msgspec.Struct):
    status: Literal["ok"]
    # Processes, on any host, running operations with a current lease. 0: writes are
    # still accepted, and wait in the queue until one starts (monitor this).
    workers: int


def key_status(key: ApiKey, now: datetime) -> Literal["active", "expired", "revoked"]:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def key_out(key: ApiKey, now: datetime) -> KeyOut:
    return KeyOut(
        prefix=key.prefix,
        name=key.name,
        user_id=key.user_id,
        user_name=key.user.name,
        team_id=key.team_id,
        scopes=list(key.scopes),
        status=key_status(key, now),
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
        created_at=key.created_at,
    )


def key_created(key: ApiKey, plaintext: str, now: datetime) -> KeyCreated:
    return KeyCreated(**msgspec.structs.asdict(key_out(key, now)), key=plaintext)
