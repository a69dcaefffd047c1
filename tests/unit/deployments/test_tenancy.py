"""Team context, visibility (other tenants' deployments are 404) and tier limits,
exercised through small route handlers built the way the deployment routes use the helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar import get, post
from litestar.params import FromQuery
from sqlalchemy import select

from api.accounts.tiers import check_tier_limit
from api.auth.guards import CurrentPrincipal, TeamContext, require_scope
from api.auth.principal import READ, WRITE
from api.deployments.tenancy import can_manage, get_visible_deployment, visible_deployments_filter
from api.http.context import context_of
from api.http.dependencies import AppSettings, DbSession
from persistence.models import Deployment
from stacks.settings import Settings
from tests.seed import MakeClient, Seed, bearer


@get("/test/deployments", guards=[require_scope(READ)], sync_to_thread=True)
def list_visible(principal: CurrentPrincipal, team_context: TeamContext, db_session: DbSession) -> list[str]:
    query = select(Deployment.name).where(visible_deployments_filter(principal, team_context))
    return sorted(db_session.scalars(query))


@get("/test/deployments/status", guards=[require_scope(READ)], sync_to_thread=True)
def status(principal: CurrentPrincipal, db_session: DbSession, name: FromQuery[str]) -> dict[str, Any]:
    row = get_visible_deployment(db_session, principal, name)
    return {"name": row.name, "manage": can_manage(principal, row)}


@post("/test/deployments", guards=[require_scope(WRITE)], status_code=201, sync_to_thread=True)
def create(
    principal: CurrentPrincipal,
    team_context: TeamContext,
    db_session: DbSession,
    settings: AppSettings,
    name: FromQuery[str],
) -> dict[str, Any]:
    check_tier_limit(db_session, principal, team_context, settings)
    row = Deployment(name=name, owner_user_id=principal.user_id, team_id=team_context, template="nginx")
    db_session.add(row)
    db_session.commit()
    return {"name": name, "team_id": team_context}


ROUTES = [list_visible, status, create]


@pytest.fixture
def tenants(make_settings: Callable[..., Settings], make_client: MakeClient) -> Callable[..., Any]:
    def build(**env: str) -> Any:
        client = make_client(make_settings(**env), extra_route_handlers=ROUTES)
        seed = Seed(context_of(client.app.state).db.reads)
        alice, bob, carol, dave = (seed.user(n) for n in ("alice", "bob", "carol", "dave"))
        red = seed.team("red", alice, members=[carol])
        blue = seed.team("blue", bob)
        seed.deployment("alice-own", alice)
        seed.deployment("bob-own", bob)
        seed.deployment("red-app", carol, team=red)
        seed.deployment("blue-app", bob, team=blue)
        keys = {
            "alice": seed.key(alice),
            "alice_read": seed.key(alice, (READ,)),
            "alice_red": seed.key(alice, team=red),
            "bob": seed.key(bob),
            "carol": seed.key(carol),
            "dave": seed.key(dave),
        }
        return client, seed, keys, {"red": red.id, "blue": blue.id, "alice": alice, "carol": carol}

    return build


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return response.json()


def test_list_shows_own_and_team_deployments_only(tenants: Callable[..., Any]) -> None:
    client, _, keys, ids = tenants()
    assert names(client.get("/test/deployments", headers=bearer(keys["alice"]))) == ["alice-own", "red-app"]
    assert names(client.get("/test/deployments", headers=bearer(keys["carol"]))) == ["red-app"]
    assert names(client.get("/test/deployments", headers=bearer(keys["bob"]))) == ["blue-app", "bob-own"]
    assert names(client.get("/test/deployments", headers=bearer(keys["dave"]))) == []
    # Team context narrows to that team.
    red = client.get("/test/deployments", params={"team_id": ids["red"]}, headers=bearer(keys["alice"]))
    assert names(red) == ["red-app"]
    # A team-bound key sees only its team, whatever it asks for.
    assert names(client.get("/test/deployments", headers=bearer(keys["alice_red"]))) == ["red-app"]


def test_foreign_team_context_is_403(tenants: Callable[..., Any]) -> None:
    client, _, keys, ids = tenants()
    response = client.get("/test/deployments", params={"team_id": ids["blue"]}, headers=bearer(keys["alice"]))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    bound = client.get("/test/deployments", params={"team_id": ids["blue"]}, headers=bearer(keys["alice_red"]))
    assert bound.status_code == 403
    assert client.get("/test/deployments", params={"team_id": "red"}, headers=bearer(keys["alice"])).status_code == 400
    mixed = client.get(
        "/test/deployments",
        params={"team_id": ids["red"]},
        headers={**bearer(keys["alice"]), "X-Team-Id": str(ids["blue"])},
    )
    assert mixed.status_code == 400


def test_other_tenants_deployments_are_404(tenants: Callable[..., Any]) -> None:
    client, _, keys, _ = tenants()
    for key, name in [("bob", "alice-own"), ("bob", "red-app"), ("dave", "blue-app"), ("alice_red", "alice-own")]:
        response = client.get("/test/deployments/status", params={"name": name}, headers=bearer(keys[key]))
        assert response.status_code == 404, (key, name)
        missing = client.get("/test/deployments/status", params={"name": "no-such"}, headers=bearer(keys[key]))
        assert response.json()["code"] == missing.json()["code"] == "not_found"
    # Team members manage the team's deployments; a read-only key sees but cannot manage.
    carol = client.get("/test/deployments/status", params={"name": "red-app"}, headers=bearer(keys["alice"]))
    assert carol.json() == {"name": "red-app", "manage": True}
    read = client.get("/test/deployments/status", params={"name": "red-app"}, headers=bearer(keys["alice_read"]))
    assert read.json() == {"name": "red-app", "manage": False}


def test_leaving_a_team_loses_its_deployments(tenants: Callable[..., Any]) -> None:
    client, seed, keys, ids = tenants()
    from api.accounts.service import remove_team_member
    from persistence.models import Team, User

    with seed.factory() as db:
        remove_team_member(db, db.get(Team, ids["red"]), db.get(User, ids["carol"].id))
        db.commit()
    response = client.get("/test/deployments/status", params={"name": "red-app"}, headers=bearer(keys["carol"]))
    assert response.status_code == 404


def test_write_team_context_from_header(tenants: Callable[..., Any]) -> None:
    client, _, keys, ids = tenants()
    made = client.post(
        "/test/deployments", params={"name": "x1"}, headers={**bearer(keys["alice"]), "X-Team-Id": str(ids["red"])}
    )
    assert made.status_code == 201
    assert made.json()["team_id"] == ids["red"]
    personal = client.post("/test/deployments", params={"name": "x2"}, headers=bearer(keys["alice"]))
    assert personal.json()["team_id"] is None
    bound = client.post("/test/deployments", params={"name": "x3"}, headers=bearer(keys["alice_red"]))
    assert bound.json()["team_id"] == ids["red"]
    foreign = client.post(
        "/test/deployments", params={"name": "x4"}, headers={**bearer(keys["alice"]), "X-Team-Id": str(ids["blue"])}
    )
    assert foreign.status_code == 403


def test_tier_limits_only_with_billing_enabled(tenants: Callable[..., Any]) -> None:
    client, _, keys, _ = tenants()
    # alice already has one personal deployment on the free tier: fine while billing is off.
    assert client.post("/test/deployments", params={"name": "more"}, headers=bearer(keys["alice"])).status_code == 201


def test_free_tier_limit_names_tier_limit_and_count(tenants: Callable[..., Any]) -> None:
    client, _, keys, _ = tenants(SHIPSTACK_BILLING="1")
    response = client.post("/test/deployments", params={"name": "more"}, headers=bearer(keys["alice"]))
    assert response.status_code == 403
    assert response.json() == {
        "error": "Deployment limit reached: the free tier of user 'alice' allows 1 deployment and 1 already exist",
        "code": "tier_limit",
    }
    # dave has none yet: one is allowed, the second is not.
    assert client.post("/test/deployments", params={"name": "d1"}, headers=bearer(keys["dave"])).status_code == 201
    assert client.post("/test/deployments", params={"name": "d2"}, headers=bearer(keys["dave"])).status_code == 403


def test_team_limits_count_the_team_not_the_member(tenants: Callable[..., Any]) -> None:
    client, seed, keys, ids = tenants(SHIPSTACK_BILLING="1")
    red = {**bearer(keys["alice"]), "X-Team-Id": str(ids["red"])}
    # red (free) already has red-app, although alice's personal count is separate.
    denied = client.post("/test/deployments", params={"name": "r2"}, headers=red)
    assert denied.status_code == 403
    assert "free tier of team 'red' allows 1 deployment and 1 already exist" in denied.json()["error"]

    from api.accounts.service import change_team_tier
    from persistence.models import Team

    with seed.factory() as db:
        change_team_tier(db, db.get(Team, ids["red"]), "business")
        db.commit()
    for i in range(2, 11):
        assert client.post("/test/deployments", params={"name": f"r{i}"}, headers=red).status_code == 201
    full = client.post("/test/deployments", params={"name": "r11"}, headers=red)
    assert full.status_code == 403
    assert "business tier of team 'red' allows 10 deployments and 10 already exist" in full.json()["error"]
    with seed.factory() as db:
        change_team_tier(db, db.get(Team, ids["red"]), "enterprise")
        db.commit()
    for i in range(11, 14):
        assert client.post("/test/deployments", params={"name": f"r{i}"}, headers=red).status_code == 201
