"""The reads' prepared visibility clause (`tenancy.VISIBLE` with `tenancy.visibility`'s
parameters) sees exactly what `visible_deployments_filter` sees, for every kind of
caller and team context, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select

from api.auth.principal import READ, WRITE, Principal
from api.deployments.tenancy import VISIBLE, visibility, visible_deployments_filter
from api.http.context import context_of
from persistence.models import Deployment
from tests.seed import Seed


def test_the_prepared_clause_matches_the_filter(client: TestClient[Litestar]) -> None:
    seed = Seed(context_of(client.app.state).db.reads)
    alice, bob = seed.user("alice"), seed.user("bob")
    red, blue = seed.team("red", alice), seed.team("blue", bob, members=[alice])
    green = seed.team("green", bob)
    for owner, team in itertools.product((alice, bob), (None, red, blue, green)):
        seed.deployment(f"{owner.name}-{team.name if team else 'own'}", owner, team=team)
    alice_teams, bob_teams = {red.id: "owner", blue.id: "member"}, {blue.id: "owner", green.id: "owner"}

    def caller(user_id: int, teams: dict[int, str], bound: int | None = None) -> Principal:
        return Principal(user_id, "someone", False, "free", frozenset({READ, WRITE}), teams, bound_team_id=bound)

    callers = {
        "alice": caller(alice.id, alice_teams),
        "alice bound to red": caller(alice.id, alice_teams, red.id),
        "bob": caller(bob.id, bob_teams),
        "a key bound to a team its user left": caller(bob.id, {}, red.id),
        "nobody's": caller(999, {}),
    }
    with seed.factory() as db:
        for (label, who), team_id in itertools.product(callers.items(), (None, red.id, blue.id, green.id)):
            expected = set(db.scalars(select(Deployment.name).where(visible_deployments_filter(who, team_id))))
            params = visibility(who, team_id)._asdict()
            found = set(db.scalars(select(Deployment.name).where(VISIBLE), params))
            assert found == expected, (label, team_id)
