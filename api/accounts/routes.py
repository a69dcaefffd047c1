"""Admin API (scope `admin`): users, teams, membership, keys, tiers, billing events."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, delete, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.accounts import service as accounts
from api.accounts.schemas import (
    BillingEventOut,
    MemberOut,
    MemberSet,
    TeamCreate,
    TeamOut,
    TierChange,
    UserCreate,
    UserOut,
    billing_event_out,
    team_out,
    user_out,
)
from api.auth.guards import CurrentPrincipal, require_scope
from api.auth.principal import ADMIN
from api.auth.schemas import KeyCreate, KeyCreated, KeyOut, key_created, key_out
from api.http.dependencies import AppSettings, DbSession, WriteSession
from api.http.errors import AUTH_ERRORS, error_responses
from api.ids import MAX_ID, IdParam
from persistence import accounts as q
from persistence.base import utcnow
from persistence.billing import list_billing_events
from persistence.keys import list_keys


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """An admin route's own statuses besides what every authenticated route answers."""
    return {**AUTH_ERRORS, **error_responses(*statuses)}


OptionalId = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)]


class AdminController(Controller):
    path = "/api/admin"
    guards = [require_scope(ADMIN)]  # noqa: RUF012  (Litestar reads this class attribute)
    tags = ["admin"]  # noqa: RUF012

    @post("/users", status_code=201, sync_to_thread=True, responses=errors(409))
    def create_user(self, data: JSONBody[UserCreate], write_session: WriteSession) -> UserOut:
        user = accounts.create_user(
            write_session, data.name, password=data.password, is_admin=data.is_admin, tier=data.tier
        )
        write_session.commit()
        return user_out(user)

    @get("/users", sync_to_thread=True, responses=AUTH_ERRORS)
    def list_users(self, db_session: DbSession) -> list[UserOut]:
        return [user_out(u) for u in q.list_users(db_session)]

    @put("/users/{user_id:int}/tier", sync_to_thread=True, responses=AUTH_ERRORS)
    def change_user_tier(self, user_id: IdParam, data: JSONBody[TierChange], write_session: WriteSession) -> UserOut:
        """Writes a `tier.changed` billing event when the tier actually changes."""
        user = accounts.require_user(write_session, user_id)
        accounts.change_user_tier(write_session, user, data.tier)
        write_session.commit()
        return user_out(user)

    @post("/teams", status_code=201, sync_to_thread=True, responses=errors(404, 409))
    def create_team(self, data: JSONBody[TeamCreate], write_session: WriteSession) -> TeamOut:
        owner = accounts.require_user(write_session, data.owner_user_id)
        team = accounts.create_team(write_session, data.name, owner=owner, tier=data.tier)
        write_session.commit()
        return team_out(team)

    @get("/teams", sync_to_thread=True, responses=AUTH_ERRORS)
    def list_teams(self, db_session: DbSession) -> list[TeamOut]:
        return [team_out(t) for t in q.list_teams(db_session)]

    @put("/teams/{team_id:int}/tier", sync_to_thread=True, responses=AUTH_ERRORS)
    def change_team_tier(
        self, team_id: IdParam, data: JSONBody[TierChange], principal: CurrentPrincipal, write_session: WriteSession
    ) -> TeamOut:
        team = accounts.require_team(write_session, team_id)
        actor = q.get_user(write_session, principal.user_id)
        accounts.change_team_tier(write_session, team, data.tier, actor=actor)
        write_session.commit()
        return team_out(team)

    @get("/teams/{team_id:int}/members", sync_to_thread=True, responses=AUTH_ERRORS)
    def list_members(self, team_id: IdParam, db_session: DbSession) -> list[MemberOut]:
        accounts.require_team(db_session, team_id)
        return [
            MemberOut(team_id=team_id, user_id=u.id, user_name=u.name, role=m.role)  # type: ignore[arg-type]
            for m, u in q.list_members(db_session, team_id)
        ]

    @post("/teams/{team_id:int}/members", status_code=200, sync_to_thread=True, responses=errors(404, 409))
    def set_member(self, team_id: IdParam, data: JSONBody[MemberSet], write_session: WriteSession) -> MemberOut:
        """Add a member, or change the role of an existing one."""
        team = accounts.require_team(write_session, team_id)
        user = accounts.require_user(write_session, data.user_id)
        member = accounts.set_team_member(write_session, team, user, data.role)
        write_session.commit()
        return MemberOut(team_id=team.id, user_id=user.id, user_name=user.name, role=member.role)  # type: ignore[arg-type]

    @delete(
        "/teams/{team_id:int}/members/{user_id:int}", status_code=204, sync_to_thread=True, responses=errors(404, 409)
    )
    def remove_member(self, team_id: IdParam, user_id: IdParam, write_session: WriteSession) -> None:
        team = accounts.require_team(write_session, team_id)
        user = accounts.require_user(write_session, user_id)
        accounts.remove_team_member(write_session, team, user)
        write_session.commit()

    @post("/keys", status_code=201, sync_to_thread=True, responses=errors(404, 409))
    def create_key(self, data: JSONBody[KeyCreate], write_session: WriteSession, settings: AppSettings) -> KeyCreated:
        """The full key is in this response only; it is stored as a hash. 409 `key_limit`
        when the user already holds SHIPSTACK_MAX_API_KEYS live keys."""
        user = accounts.require_user(write_session, data.user_id)
        row, plaintext = accounts.issue_api_key(
            write_session,
            user,
            scopes=data.scopes,
            name=data.name,
            team_id=data.team_id,
            expires_at=accounts.expiry_from_days(data.expires_days),
            max_keys=settings.auth.max_api_keys,
        )
        write_session.commit()
        return key_created(row, plaintext, utcnow())

    @get("/keys", sync_to_thread=True, responses=AUTH_ERRORS)
    def list_keys(
        self,
        db_session: DbSession,
        user_id: OptionalId = None,
    ) -> list[KeyOut]:
        now = utcnow()
        return [key_out(k, now) for k in list_keys(db_session, user_id=user_id)]

    @post("/keys/{prefix:str}/revoke", status_code=200, sync_to_thread=True, responses=AUTH_ERRORS)
    def revoke_key(self, prefix: FromPath[str], write_session: WriteSession) -> KeyOut:
        key = accounts.revoke_api_key(write_session, prefix)
        write_session.commit()
        return key_out(key, utcnow())

    @get("/billing/events", sync_to_thread=True, responses=AUTH_ERRORS)
    def billing_events(
        self,
        db_session: DbSession,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        before_id: OptionalId = None,
        kind: FromQuery[Literal["deployment.created", "deployment.deleted", "tier.changed"] | None] = None,
        user_id: OptionalId = None,
        team_id: OptionalId = None,
    ) -> list[BillingEventOut]:
        """Newest first; page with `before_id` = the smallest id already seen."""
        events = list_billing_events(
            db_session,
            limit=limit,
            before_id=before_id,
            kind=kind,
            user_id=user_id,
            team_id=team_id,
        )
        return [billing_event_out(e) for e in events]
