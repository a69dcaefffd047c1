"""Team-context resolution and visibility rules on plain objects (no database)."""

from __future__ import annotations

import pytest

from api.auth.principal import ADMIN, READ, WRITE, Principal, user_scopes
from api.deployments.tenancy import can_manage, can_view, resolve_team_context
from api.errors import ServiceError
from api.http.errors import status_of
from persistence.models import Deployment


def principal(**kw: object) -> Principal:
    base: dict[str, object] = {
        "user_id": 1,
        "user_name": "alice",
        "is_admin": False,
        "tier": "free",
        "scopes": frozenset({READ, WRITE}),
        "teams": {10: "owner", 11: "member"},
    }
    return Principal(**{**base, **kw})  # type: ignore[arg-type]


def test_user_scopes() -> None:
    assert user_scopes(False) == {READ, WRITE}
    assert user_scopes(True) == {READ, WRITE, ADMIN}


@pytest.mark.parametrize(
    ("kw", "requested", "expected"),
    [
        ({}, None, None),
        ({}, "", None),
        ({}, "10", 10),
        ({}, 11, 11),
        ({"bound_team_id": 10}, None, 10),
        ({"bound_team_id": 10}, "10", 10),
    ],
)
def test_resolve_team_context(kw: dict[str, object], requested: object, expected: int | None) -> None:
    assert resolve_team_context(principal(**kw), requested) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "requested", "status"),
    [
        ({}, "12", 403),
        ({}, "ten", 400),
        ({"bound_team_id": 10}, "11", 403),
        # Bound to a team the user has since left: the key can act nowhere.
        ({"bound_team_id": 12}, None, 403),
    ],
)
def test_resolve_team_context_refusals(kw: dict[str, object], requested: str | None, status: int) -> None:
    with pytest.raises(ServiceError) as err:
        resolve_team_context(principal(**kw), requested)
    assert status_of(err.value) == status


def row(owner: int, team: int | None) -> Deployment:
    return Deployment(name="d", owner_user_id=owner, team_id=team)


def test_visibility_and_management() -> None:
    alice = principal()
    assert can_view(alice, row(1, None)) and can_manage(alice, row(1, None))
    assert not can_view(alice, row(2, None))
    assert can_view(alice, row(2, 11)) and can_manage(alice, row(2, 11))
    assert not can_view(alice, row(1, 12))
    reader = principal(scopes=frozenset({READ}))
    assert can_view(reader, row(1, None)) and not can_manage(reader, row(1, None))
    bound = principal(bound_team_id=10)
    assert can_view(bound, row(2, 10))
    assert not can_view(bound, row(1, None)) and not can_view(bound, row(1, 11))
