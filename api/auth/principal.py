"""Who is calling: the authenticated user, through which credential, with which rights."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

READ = "deployments:read"
WRITE = "deployments:write"
ADMIN = "admin"
ALL_SCOPES = (READ, WRITE, ADMIN)


def user_scopes(is_admin: bool) -> frozenset[str]:
    """Everything a user may do; a key's effective scopes are its own scopes within these."""
    return frozenset(ALL_SCOPES) if is_admin else frozenset((READ, WRITE))


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    user_name: str
    is_admin: bool
    tier: str
    # Effective scopes: a key's scopes narrowed to what its user may still do, so a
    # demoted admin's old "admin" key stops working at once.
    scopes: frozenset[str]
    # team id -> role ("owner" | "member") for every team the user belongs to.
    teams: Mapping[int, str] = field(default_factory=dict)
    via: Literal["key", "session"] = "key"
    key_id: int | None = None
    key_prefix: str | None = None
    key_expires_at: datetime | None = None
    # A key bound to a team acts only within that team.
    bound_team_id: int | None = None
    session_id: str | None = None
    csrf_token: str | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def accessible_team_ids(self) -> frozenset[int]:
        """Teams whose deployments this credential may touch."""
        if self.bound_team_id is not None:
            return frozenset({self.bound_team_id} & self.teams.keys())
        return frozenset(self.teams)

    @property
    def rate_limit_key(self) -> str:
        return f"key:{self.key_id}" if self.via == "key" else f"user:{self.user_id}"
