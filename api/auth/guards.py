"""Who may call a route: the `principal` dependencies and scope guards.

Route handlers declare `principal: CurrentPrincipal` (401 when anonymous) and
guard with `require_scope(READ)`; services that need a scope check call `need`.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import HeaderParameter, QueryParameter
from litestar.types import Guard

from api.auth.principal import ALL_SCOPES, Principal
from api.deployments.tenancy import TEAM_HEADER, resolve_team_context
from api.errors import Forbidden, Invalid, Unauthorized

# Annotations for handler parameters: Litestar 2.25+ wants injected parameters marked.
CurrentPrincipal = NamedDependency[Principal]
OptionalPrincipal = NamedDependency[Principal | None]
TeamContext = NamedDependency[int | None]

# A team id, or empty for none: what `resolve_team_context` accepts, so the
# document does not promise more (a team the caller is not in is still 403).
TEAM_ID_PATTERN = r"^[0-9]{0,15}$"
TEAM_ID_TEXT = "Team context: a team id (empty: none)"


def need(principal: Principal, scope: str) -> None:
    """Forbidden unless the credential holds `scope`."""
    if not principal.has_scope(scope):
        raise Forbidden(f"This credential lacks the {scope} scope")


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """Litestar dependency `principal`: the authenticated caller (401 if anonymous)."""
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        raise Unauthorized("Authentication required")
    return principal


async def provide_optional_principal(request: Request[Any, Any, Any]) -> Principal | None:
    """Litestar dependency `optional_principal`, for `auth_optional` routes."""
    principal = request.scope.get("user")
    return principal if isinstance(principal, Principal) else None


async def provide_team_context(
    principal: NamedDependency[Principal],
    team_id: Annotated[
        str | None,
        QueryParameter(name="team_id", required=False, pattern=TEAM_ID_PATTERN, description=TEAM_ID_TEXT),
    ] = None,
    x_team_id: Annotated[
        str | None,
        HeaderParameter(name=TEAM_HEADER, required=False, pattern=TEAM_ID_PATTERN, description=TEAM_ID_TEXT),
    ] = None,
) -> int | None:
    """Litestar dependency `team_context`: the resolved team id or None (rules in api.deployments.tenancy)."""
    if team_id and x_team_id and team_id.strip() != x_team_id.strip():
        raise Invalid(f"{TEAM_HEADER} and team_id disagree", "bad_request")
    return resolve_team_context(principal, x_team_id or team_id)


def require_scope(*scopes: str) -> Guard:
    """Guard: authenticated (else 401) and holding every scope given (else 403)."""
    unknown = set(scopes) - set(ALL_SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}")

    # Async although it waits on nothing: Litestar runs a sync guard in a worker thread,
    # a thread hop on every request for a set lookup.
    async def guard(connection: Any, _handler: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise Unauthorized("Authentication required")
        missing = [s for s in scopes if not principal.has_scope(s)]
        if missing:
            need(principal, missing[0])

    guard.required_scopes = scopes  # type: ignore[attr-defined]  # read by the route audit test
    return guard


def require_authenticated() -> Guard:
    """Guard for routes any authenticated caller may use (their own keys, logout)."""
    return require_scope()
