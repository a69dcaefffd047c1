"""A migrated database for the scheduler's tests: SQLite, and PostgreSQL when the run
has one (the suite's `database_url`, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from persistence.db import make_engine, migrate


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()
