"""msgspec request/response bodies of the auth, key and admin routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from persistence.models import ApiKey, BillingEvent, Team, User

# Lower-case only: "Admin" and "admin" must not be two different accounts.
Name = Annotated[
    str,
    Meta(
        pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
        description="1-64 chars: a-z, 0-9, '.', '_', '-'; starting with a letter or digit",
    ),
]
# The upper bound keeps argon2 hashing of hostile input cheap.
NewPassword = Annotated[str, Meta(min_length=8, max_length=1024)]
Tier = Literal["free", "business", "enterprise"]
Role = Literal["owner", "member"]
Scope = Literal["deployments:read", "deployments:write", "admin"]
KeyName = Annotated[str, Meta(max_length=100)]
ExpiresDays = Annotated[int, Meta(ge=1, le=3650)]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=False):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    password: Annotated[str, Meta(min_length=1, max_length=1024)]
    # Form posts only: where to redirect after login (a local path).
    next: str | None = None


class UserOut(msgspec.Struct):
    id: int
    name: str
    is_admin: bool
    tier: Tier
    has_password: bool
    created_at: datetime


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


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    password: NewPassword | None = None
    is_admin: bool = False
    tier: Tier = "free"


class TierChange(msgspec.Struct, forbid_unknown_fields=True):
    tier: Tier


class TeamCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    owner_user_id: int
    tier: Tier = "free"


class TeamOut(msgspec.Struct):
    id: int
    name: str
    tier: Tier
    created_at: datetime


class MemberSet(msgspec.Struct, forbid_unknown_fields=True):
    user_id: int
    role: Role = "member"


class MemberOut(msgspec.Struct):
    team_id: int
    user_id: int
    user_name: str
    role: Role


class OwnKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    scopes: Annotated[list[Scope], Meta(min_length=1)]
    name: KeyName = ""
    expires_days: ExpiresDays | None = None
    team_id: int | None = None


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    user_id: int
    scopes: Annotated[list[Scope], Meta(min_length=1)]
    name: KeyName = ""
    expires_days: ExpiresDays | None = None
    team_id: int | None = None


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


class BillingEventOut(msgspec.Struct):
    id: int
    kind: Literal["deployment.created", "deployment.deleted", "tier.changed"]
    user_id: int | None
    team_id: int | None
    deployment_name: str | None
    template: str | None
    detail: dict[str, Any] | None
    at: datetime


class Health(msgspec.Struct):
    status: Literal["ok"]


# Row -> body conversions, kept next to the shapes they build.


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        name=user.name,
        is_admin=user.is_admin,
        tier=user.tier,
        has_password=user.password_hash is not None,
        created_at=user.created_at,
    )


def team_out(team: Team) -> TeamOut:
    return TeamOut(id=team.id, name=team.name, tier=team.tier, created_at=team.created_at)


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


def billing_event_out(event: BillingEvent) -> BillingEventOut:
    return BillingEventOut(
        id=event.id,
        kind=event.kind,
        user_id=event.user_id,
        team_id=event.team_id,
        deployment_name=event.deployment_name,
        template=event.template,
        detail=event.detail,
        at=event.at,
    )
