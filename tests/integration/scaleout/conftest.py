"""The fleet fixture: a fresh service database and a fresh Pulumi state database on the
run's PostgreSQL, one user with a read/write key, and the environment every service
process of the fleet shares."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from persistence.db import make_engine
from stacks.settings import Settings
from tests.integration.processes import seed_database
from tests.integration.scaleout.fleet import PASSPHRASE, Fleet
from tests.postgres import fresh_database


@pytest.fixture
def fleet(settings: Settings, tmp_path: Path) -> Iterator[Fleet]:
    base = os.environ.get("SHIPSTACK_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("no PostgreSQL server for this run (install Debian's postgresql package)")
    with fresh_database(base, "scaleout_db") as db_url, fresh_database(base, "scaleout_state") as state_url:
        key = seed_database(db_url, "fleet")
        db = make_engine(db_url)
        state = make_url(state_url)
        # The postgres:// backend as Pulumi's CLI reads it (lib/pq: a password, sslmode).
        backend = f"postgres://{state.username}:unused@{state.host}:{state.port}/{state.database}?sslmode=disable"
        env = {
            **os.environ,
            "SHIPSTACK_DATABASE_URL": db_url,
            "PULUMI_BACKEND_URL": backend,
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "KUBECONFIG": str(settings.engine.kubeconfig),
            "SHIPSTACK_WORKERS": "2",  # 3 processes share 2 cores here
            "SHIPSTACK_DRIFT_INTERVAL": "0",
        }
        state_engine = make_engine(state_url)
        fleet = Fleet(tmp_path, env, key, db, state_engine)
        try:
            yield fleet
        finally:
            fleet.stop_all()
            db.dispose()
            state_engine.dispose()
