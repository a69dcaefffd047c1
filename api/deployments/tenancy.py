"""Team context and deployment visibility: who sees and manages which deployments.

Rules
-----
* A deployment created without a team context is personal: only its owner sees it.
* A deployment created in a team context belongs to the team: every member of the
  team (owner or member role) sees and manages it, the creator included only while
  a member. Nobody else does, admins included (the admin scope manages accounts,
  not other tenants' deployments).
* A key bound to a team (`api_keys.team_id`) acts only inside that team: it sees
  that team's deployments and none of its user's personal or other teams' ones.
* Deployments a caller may not see answer 404, exactly like missing ones.

Choosing the team context (one rule for reads and writes, keys and sessions)
----------------------------------------------------------------------------
* `X-Team-Id: <id>` request header, or the `team_id=<id>` query parameter (the
  spec's list filter; also usable in a form's action URL). Both given and
  different -> 400. Route handlers may also accept a `team_id` body/form field and
  pass it to `resolve_team_context` themselves.
* Nothing given: reads cover every deployment the caller can see (personal plus
  all of their teams'); writes create personal deployments.
* A team-bound key always acts in its team: no team given means its team, any
  other team is 403.
* Naming a team the caller is not a member of is 403.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Boolean, ColumnElement, and_, bindparam, false, or_, select
from sqlalchemy.orm import Session

from api.auth.principal import WRITE, Principal
from api.errors import Forbidden, Invalid, NotFound
from persistence.models import Deployment

TEAM_HEADER = "X-Team-Id"


def resolve_team_context(principal: Principal, requested: int | str | None) -> int | None:
    """The team a request acts in (None = personal / everything visible), or 400/403."""
    if requested is None or (isinstance(requested, str) and not requested.strip()):
        if principal.bound_team_id is None:
            return None
        team_id = principal.bound_team_id
    else:
        try:
            team_id = int(requested)
        except ValueError:
            raise Invalid("team_id must be an integer", "bad_request") from None
        if principal.bound_team_id is not None and team_id != principal.bound_team_id:
            raise Forbidden(f"This API key is bound to team {principal.bound_team_id}")
    if team_id not in principal.teams:
        raise Forbidden(f"Not a member of team {team_id}")
    return team_id


def visible_deployments_filter(principal: Principal, team_id: int | None) -> ColumnElement[bool]:
    """WHERE clause on `Deployment` for what the caller sees in a team context.

    `team_id` should come from `resolve_team_context`; it is re-checked here so a
    raw value can never widen access.
    """
    teams = principal.accessible_team_ids
    if team_id is not None:
        return Deployment.team_id == team_id if team_id in teams else false()
    if principal.bound_team_id is not None:
        return Deployment.team_id.in_(teams) if teams else false()
    personal = and_(Deployment.team_id.is_(None), Deployment.owner_user_id == principal.user_id)
    return or_(personal, Deployment.team_id.in_(teams)) if teams else personal


class Visibility(NamedTuple):
    """`visible_deployments_filter`'s rule as the parameters of `VISIBLE`, one statement
    shape for every caller, so the reads run statements prepared once."""

    personal: bool  # the caller's own deployments outside teams are visible
    user_id: int
    teams: list[int]  # the teams whose deployments are visible


def visibility(principal: Principal, team_id: int | None) -> Visibility:
    teams = principal.accessible_team_ids
    if team_id is not None:
        return Visibility(False, principal.user_id, [team_id] if team_id in teams else [])
    return Visibility(principal.bound_team_id is None, principal.user_id, sorted(teams))


VISIBLE = or_(
    and_(bindparam("personal", type_=Boolean), Deployment.team_id.is_(None),
         Deployment.owner_user_id == bindparam("user_id")),
    Deployment.team_id.in_(bindparam("teams", expanding=True)),
)  # fmt: skip


def can_view(principal: Principal, row: Deployment) -> bool:
    if row.team_id is not None:
        return row.team_id in principal.accessible_team_ids
    return principal.bound_team_id is None and row.owner_user_id == principal.user_id


def can_manage(principal: Principal, row: Deployment) -> bool:
    """May change or delete it: visible to the caller and the credential can write.

    Callers answer 404 when this is False and the row is not visible, so existence
    never leaks; the write scope itself is normally enforced earlier by the guard.
    """
    return can_view(principal, row) and principal.has_scope(WRITE)


def get_visible_deployment(
    db: Session,
    principal: Principal,
    name: str,
    *,
    team_id: int | None = None,
    for_update: bool = False,
) -> Deployment:
    """The named deployment if the caller can see it, else 404 (also when it exists)."""
    query = select(Deployment).where(Deployment.name == name, visible_deployments_filter(principal, team_id))
    if for_update:
        query = query.with_for_update()
    row = db.scalar(query)
    if row is None:
        raise NotFound(f"Deployment '{name}' not found")
    return row
