"""What the running service holds for its request handlers, typed.

One `AppContext` per app, stored in Litestar's state and read only through
`context_of`, so handlers get typed dependencies (api/http/dependencies.py)
instead of untyped `app.state` attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from litestar.datastructures import State
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.auth.ratelimit import RateLimiter
from api.http.engine_work import EngineWork
from stacks.runner import Runner
from stacks.settings import Settings

if TYPE_CHECKING:
    from api.observe.kube import Kube
    from scheduler.jobs import AutoUpdateScheduler

STATE_KEY = "shipstack"


@dataclass
class Database:
    engine: Engine
    reads: sessionmaker[Session]
    # On SQLite each transaction takes the write lock at BEGIN (read-then-write
    # transactions: name checks, tier counts, claims); plain sessions on PostgreSQL.
    writes: sessionmaker[Session]


@dataclass
class AppContext:
    settings: Settings
    db: Database
    runner: Runner
    rate_limiter: RateLimiter
    login_limiter: RateLimiter
    # Request work that waits on a pulumi process (previews): its own few threads.
    engine_work: EngineWork
    scheduler: AutoUpdateScheduler | None = None
    # The observe routes' cluster client, made on first use on the serving loop.
    kube: Kube | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def context_of(state: State) -> AppContext:
    context = state.get(STATE_KEY)
    if not isinstance(context, AppContext):
        raise RuntimeError("the app was not built by api.http.app.build_app")
    return context
