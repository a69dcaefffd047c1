"""Fixtures for tests of the HTTP service without workers: a real database per test
(SQLite file, and PostgreSQL when the run has one), the app from `build_app`
(`run_operations=False`), a TestClient, and `seed` to create users, teams, keys and
deployment rows directly."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import make_url
from sqlalchemy.orm import Session, sessionmaker

from api.http.app import build_app
from api.http.context import context_of
from persistence.db import migrate
from stacks.settings import Settings
from tests.seed import Seed


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the newest schema, made once per run: each app test starts from
    a copy (its start-up migration then finds nothing to do) instead of migrating."""
    path = tmp_path_factory.mktemp("template") / "shipstack.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path, migrated_sqlite: Path) -> Callable[..., Settings]:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        shutil.copyfile(migrated_sqlite, url.database)

    def make(**env: str) -> Settings:
        base = {
            "SHIPSTACK_DATA": str(tmp_path / "data"),
            "SHIPSTACK_DATABASE_URL": database_url,
        }
        return Settings.from_env({**base, **env})

    return make


@pytest.fixture
def app_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient[Litestar]]]:
    """Start an app (migrations run at start-up) and return a client for it."""
    clients: list[TestClient[Litestar]] = []

    def make(settings: Settings, extra_route_handlers: Sequence[Any] = ()) -> TestClient[Litestar]:
        client = TestClient(build_app(settings, run_operations=False, extra_route_handlers=extra_route_handlers))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient[Litestar]], app_settings: Settings) -> TestClient[Litestar]:
    return make_client(app_settings)


@pytest.fixture
def db_factory(client: TestClient[Litestar]) -> sessionmaker[Session]:
    return context_of(client.app.state).db.reads


@pytest.fixture
def seed(client: TestClient[Litestar]) -> Seed:
    # Immediate transactions: seeding reads before it writes, and may run beside the
    # app's own writers.
    return Seed(context_of(client.app.state).db.writes)
