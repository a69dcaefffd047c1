"""Session-wide real parts: a throwaway PostgreSQL, the local cluster and
shipstack settings pointing at it.

Tests live by kind, then by feature: `unit/<feature>/` (no toolchain: pure
functions and the HTTP service on SQLite and PostgreSQL), `integration/<feature>/`
(the real engine, provider, cluster and registry; `make toolchain` first) and
`browser/` (Chromium). Each test's marker comes from its folder, so
`pytest -m unit` and `make test-unit` select by where a test lives."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stacks.settings import Settings
from toolchain.cluster import LocalCluster

pytest_plugins = ["tests.appfixtures"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test: SQLite, and PostgreSQL when the run has a server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shipstack.db'}"
        return
    base = os.environ.get("SHIPSTACK_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("no PostgreSQL server for this run (install Debian's postgresql package)")
    from tests.postgres import fresh_database

    with fresh_database(base) as url:
        yield url


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A fresh local cluster for this test run, on free ports, stopped at the end."""
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    local.up()
    try:
        yield local
    finally:
        # Component logs stay in pytest's temp folder (the last 3 runs are kept).
        local.down(keep_logs=True)


@pytest.fixture(scope="session")
def settings(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of a service whose data folder, backend and database are this run's own."""
    data = tmp_path_factory.mktemp("data")
    env = dict(os.environ)
    env.update(
        SHIPSTACK_DATA=str(data),
        KUBECONFIG=str(cluster.kubeconfig_path),
        PULUMI_BACKEND_URL=f"file://{data / 'state'}",
    )
    env.pop("SHIPSTACK_DATABASE_URL", None)
    return Settings.from_env(env)


KINDS = ("unit", "integration", "browser")


# `make test-unit` sets SHIPSTACK_TEST_DATABASES=sqlite for the fast loop; `make test` runs both.
DATABASES = ("sqlite", "postgresql")


def wanted_databases() -> tuple[str, ...]:
    listed = os.environ.get("SHIPSTACK_TEST_DATABASES", ",".join(DATABASES))
    wanted = tuple(d.strip() for d in listed.split(",") if d.strip())
    unknown = set(wanted) - set(DATABASES)
    if unknown:
        raise pytest.UsageError(f"SHIPSTACK_TEST_DATABASES: unknown {sorted(unknown)}; use {','.join(DATABASES)}")
    return wanted


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = wanted_databases()
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        parts = Path(str(item.path)).relative_to(Path(__file__).parent).parts
        kind = parts[0] if parts and parts[0] in KINDS else None
        if kind is None:
            raise pytest.UsageError(f"{item.nodeid}: tests live under tests/unit, tests/integration or tests/browser")
        item.add_marker(getattr(pytest.mark, kind))
        params = getattr(item, "callspec", None)
        database = params.params.get("database_url") if params is not None else None
        (dropped if database is not None and database not in wanted else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


REPO_ROOT = Path(__file__).resolve().parent.parent


_POSTGRES = None


def pytest_configure(config: pytest.Config) -> None:
    """Starts a throwaway PostgreSQL before collection, so tests parametrized
    over databases see SHIPSTACK_TEST_POSTGRES_URL; skipped when one is given or
    the run leaves PostgreSQL out."""
    global _POSTGRES
    if os.environ.get("SHIPSTACK_TEST_POSTGRES_URL") or hasattr(config, "workerinput"):
        return
    if "postgresql" not in wanted_databases():
        return
    from tests.postgres import TempPostgres

    pg = TempPostgres()
    if not pg.available:
        return
    os.environ["SHIPSTACK_TEST_POSTGRES_URL"] = pg.start()
    _POSTGRES = pg


def pytest_unconfigure(config: pytest.Config) -> None:
    if _POSTGRES is not None:
        _POSTGRES.stop()
