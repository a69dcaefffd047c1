"""Per-request providers: the database session and the service settings."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import anyio.to_thread
from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlalchemy.orm import Session

from stacks.settings import Settings

# Annotations for handler parameters: `db_session: DbSession`, `settings: AppSettings`.
DbSession = NamedDependency[Session]
AppSettings = NamedDependency[Settings]


async def provide_db_session(state: State) -> AsyncGenerator[Session, None]:
    """Litestar dependency `db_session`: one SQLAlchemy Session per request.

    Handlers commit explicitly; anything uncommitted when the handler ends (an
    error, or a read-only request) is rolled back. The session opens no connection
    until first used, so creating it on the event loop costs nothing, and closing
    it (which may talk to the database) happens in a worker thread.
    """
    session: Session = state.session_factory()
    try:
        yield session
    except Exception:
        await anyio.to_thread.run_sync(session.rollback)
        raise
    finally:
        await anyio.to_thread.run_sync(session.close)


async def provide_settings(state: State) -> Settings:
    """Litestar dependency `settings`."""
    return state.settings
