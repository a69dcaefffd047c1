"""Typed request dependencies: the database sessions, settings, the database's
session factories, the operation runner and the engine-bound request pool, each
declared by name in a handler (`db_session: DbSession`, `write_session: WriteSession`,
`settings: AppSettings`, `database: AppDatabase`, `runner: AppRunner`,
`engine_work: AppEngineWork`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.orm import Session

from api.http.context import Database, context_of
from api.http.engine_work import EngineWork
from stacks.runner import Runner
from stacks.settings import Settings

DbSession = NamedDependency[Session]
WriteSession = NamedDependency[Session]
AppSettings = NamedDependency[Settings]
AppDatabase = NamedDependency[Database]
AppRunner = NamedDependency[Runner]
AppEngineWork = NamedDependency[EngineWork]


async def provide_db_session(state: State) -> AsyncGenerator[Session, None]:
    """One SQLAlchemy Session per request, for handlers that only read.

    Anything uncommitted when the handler ends is rolled back. The session opens no
    connection until first used, so creating it on the event loop costs nothing, and
    closing it (which may talk to the database) happens in a worker thread.
    """
    async with _request_session(context_of(state).db.reads()) as session:
        yield session


async def provide_write_session(state: State) -> AsyncGenerator[Session, None]:
    """One Session per request, for handlers that write (and commit explicitly).

    Its transaction takes SQLite's write lock when it begins, as every write here
    reads first (the user a key is for, the keys it counts against the limit): a
    deferred one fails with "database is locked" when another process's commit (a
    worker's heartbeat, say) lands between the read and the write. PostgreSQL is
    unaffected."""
    async with _request_session(context_of(state).db.writes()) as session:
        yield session


@asynccontextmanager
async def _request_session(session: Session) -> AsyncIterator[Session]:
    """Rolled back on an error (the handler's exception is thrown in here), closed
    in a worker thread either way."""
    try:
        yield session
    except Exception:
        await anyio.to_thread.run_sync(session.rollback)
        raise
    finally:
        await anyio.to_thread.run_sync(session.close)


def provide_settings(state: State) -> Settings:
    return context_of(state).settings


def provide_database(state: State) -> Database:
    return context_of(state).db


def provide_runner(state: State) -> Runner:
    return context_of(state).runner


def provide_engine_work(state: State) -> EngineWork:
    return context_of(state).engine_work


DEPENDENCIES = {
    "db_session": Provide(provide_db_session),
    "write_session": Provide(provide_write_session),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "database": Provide(provide_database, sync_to_thread=False),
    "runner": Provide(provide_runner, sync_to_thread=False),
    "engine_work": Provide(provide_engine_work, sync_to_thread=False),
}
