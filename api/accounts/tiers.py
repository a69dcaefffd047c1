"""Tier limits on deployment count, enforced only when billing is enabled.

Limits are per team for deployments created in a team context (the team's tier)
and per user for personal deployments (the user's tier, counting only personal
ones): a team's deployments are billed to the team, not to the member who made them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.principal import Principal
from api.errors import Forbidden, Unauthorized
from persistence.billing import count_deployments
from persistence.models import Team, User
from stacks.settings import Settings

# None = unlimited.
TIER_LIMITS: dict[str, int | None] = {"free": 1, "business": 10, "enterprise": None}


def check_tier_limit(db: Session, principal: Principal, team_id: int | None, settings: Settings) -> None:
    """Raise 403 `tier_limit` if one more deployment would exceed the tier's limit.

    Call inside the transaction that inserts the deployment: the team or user row
    is locked (`FOR UPDATE` on PostgreSQL) so two concurrent creates cannot both
    pass the check. On SQLite use a `session_factory(engine, immediate=True)`
    session for the same effect.
    """
    if not settings.service.billing_enabled:
        return
    if team_id is not None:
        team = db.scalar(select(Team).where(Team.id == team_id).with_for_update())
        if team is None:
            raise Forbidden(f"Not a member of team {team_id}")
        tier, subject = team.tier, f"team '{team.name}'"
    else:
        user = db.scalar(select(User).where(User.id == principal.user_id).with_for_update())
        if user is None:
            raise Unauthorized("User no longer exists")
        tier, subject = user.tier, f"user '{user.name}'"
    limit = TIER_LIMITS.get(tier)
    if limit is None:
        return
    count = count_deployments(db, team_id=team_id, user_id=principal.user_id)
    if count >= limit:
        plural = "deployment" if limit == 1 else "deployments"
        raise Forbidden(
            f"Deployment limit reached: the {tier} tier of {subject} allows {limit} {plural} and {count} already exist",
            "tier_limit",
        )
