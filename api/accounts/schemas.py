"""Request and response bodies of the admin routes: users, teams, members, tiers, billing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from api.ids import Id
from persistence.models import BillingEvent, Team, User

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


class UserOut(msgspec.Struct):
    id: int
    name: str
    is_admin: bool
    tier: Tier
    has_password: bool
    created_at: datetime


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    password: NewPassword | None = None
    is_admin: bool = False
    tier: Tier = "free"


class TierChange(msgspec.Struct, forbid_unknown_fields=True):
    tier: Tier


class TeamCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    owner_user_id: Id
    tier: Tier = "free"


class TeamOut(msgspec.Struct):
    id: int
    name: str
    tier: Tier
    created_at: datetime


class MemberSet(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Id
    role: Role = "member"


class MemberOut(msgspec.Struct):
    team_id: int
    user_id: int
    user_name: str
    role: Role


class BillingEventOut(msgspec.Struct):
    id: int
    kind: Literal["deployment.created", "deployment.deleted", "tier.changed"]
    user_id: int | None
    team_id: int | None
    deployment_name: str | None
    template: str | None
    detail: dict[str, Any] | None
    at: datetime


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
