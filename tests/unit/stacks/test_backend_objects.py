"""Pulumi's own objects in a DIY backend, as shipstack handles them: left-over stack
locks removed only when their holder is proven dead (stacks.locks) and history pruned
to the newest updates (stacks.history_prune), on the file:// backend and on the
postgres:// backend's table, laid out as Pulumi writes them (the keys of a non-file
backend start with the URL's path: the database's name)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from stacks import backend_store, history_prune, locks
from stacks.settings import Settings
from tests.concurrent import errors_when_run_at_once

SCHEMA = "CREATE TABLE pulumi_state (key TEXT PRIMARY KEY, data JSON NOT NULL, updated_at TIMESTAMPTZ DEFAULT now())"
LOCK = json.dumps({"pid": 1, "username": "root", "hostname": "elsewhere", "timestamp": "2026-01-01T00:00:00Z"})


class Backend:
    def __init__(self, url: str, root: Path | None = None, conninfo: str = "", prefix: str = "") -> None:
        self.url, self.root, self.conninfo, self.prefix = url, root, conninfo, prefix

    def put(self, key: str, text: str = "{}") -> None:
        if self.root is not None:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            (self.root / f"{key}.attrs").write_text("{}")  # gocloud's sidecar, as Pulumi writes it
            return
        value = json.dumps({"data": base64.b64encode(text.encode()).decode()})
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("INSERT INTO pulumi_state (key, data) VALUES (%s, %s)", (self.prefix + key, value))

    def keys(self, prefix: str) -> list[str]:
        store = backend_store.store_for(self.url)
        assert store is not None
        return [k for k in store.keys(prefix) if not k.endswith(".attrs")]


@pytest.fixture(params=["file", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "file":
        yield Backend(f"file://{tmp_path / 'state'}", root=tmp_path / "state")
        return
    base = os.environ.get("SHIPSTACK_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("no PostgreSQL server for this run")
    from tests.postgres import fresh_database

    with fresh_database(base) as url:
        u = make_url(url)
        conninfo = u.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(SCHEMA)
        yield Backend(f"postgres://{u.username}@{u.host}:{u.port}/{u.database}?sslmode=disable",
                      conninfo=conninfo, prefix=f"{u.database}/")  # fmt: skip


def settings_for(backend: Backend, tmp_path: Path) -> Settings:
    return Settings.from_env({"SHIPSTACK_DATA": str(tmp_path / "data"), "PULUMI_BACKEND_URL": backend.url,
                              "PULUMI_CONFIG_PASSPHRASE": "test-passphrase"})  # fmt: skip


def test_left_over_lock_of_a_live_holder_stays(backend: Backend, tmp_path: Path) -> None:
    settings = settings_for(backend, tmp_path)
    backend.put(backend_store.lock_prefix("web") + "a.json", LOCK)
    with pytest.raises(locks.StackBusy):
        locks.clear_left_over(settings, "web", holder_dead=False)
    assert backend.keys(backend_store.lock_prefix("web")) == [backend_store.lock_prefix("web") + "a.json"]


def test_left_over_lock_of_a_dead_holder_goes_and_only_that_stacks(backend: Backend, tmp_path: Path) -> None:
    settings = settings_for(backend, tmp_path)
    locks.clear_left_over(settings, "web", holder_dead=False)  # nothing left over: nothing to wait for
    backend.put(backend_store.lock_prefix("web") + "a.json", LOCK)
    backend.put(backend_store.lock_prefix("web2") + "b.json", LOCK)
    locks.clear_left_over(settings, "web", holder_dead=True)
    assert locks.held(settings, "web") == []
    assert backend.keys(backend_store.lock_prefix("web2")) == [backend_store.lock_prefix("web2") + "b.json"]


def test_locks_our_failed_pulumi_left_go_and_earlier_ones_stay(backend: Backend, tmp_path: Path) -> None:
    settings = settings_for(backend, tmp_path)
    earlier = backend_store.lock_prefix("web") + "earlier.json"
    backend.put(earlier, LOCK)
    with pytest.raises(RuntimeError), locks.cleanup_after(settings, "web"):
        backend.put(backend_store.lock_prefix("web") + "ours.json", LOCK)
        raise RuntimeError("pulumi was killed")
    assert backend.keys(backend_store.lock_prefix("web")) == [earlier]
    with locks.cleanup_after(settings, "web"):  # a success: pulumi removed its own lock itself
        backend.put(backend_store.lock_prefix("web") + "other.json", LOCK)
    assert len(backend.keys(backend_store.lock_prefix("web"))) == 2


def test_history_is_pruned_to_the_newest_updates(backend: Backend, tmp_path: Path) -> None:
    settings = settings_for(backend, tmp_path)
    stamps = [1_796_000_000_000_000_000 + i * 1_000_000_000 for i in range(15)]
    for stamp in stamps:
        for suffix in ("history.json", "checkpoint.json"):
            backend.put(f"{backend_store.history_prefix('web')}web-{stamp}.{suffix}")
            backend.put(f"{backend_store.history_prefix('web2')}web2-{stamp}.{suffix}")
        backend.put(f"{backend_store.backups_prefix('web')}web.{stamp}.json")
    history_prune.prune(settings, "web", keep=10)
    kept = backend.keys(backend_store.history_prefix("web"))
    assert len(kept) == 20
    assert {history_prune._stamp(k) for k in kept} == set(stamps[-10:])
    assert {history_prune._stamp(k) for k in backend.keys(backend_store.backups_prefix("web"))} == set(stamps[-10:])
    assert len(backend.keys(backend_store.history_prefix("web2"))) == 30  # another stack's: untouched
    assert history_prune.prune(settings, "web", keep=10) == 0


def test_pulumis_table_is_made_once_whoever_comes_first() -> None:
    """On an empty database several processes' first operations at once: the table is
    made once (Pulumi's own CREATE ... IF NOT EXISTS fails one of two racers)."""
    base = os.environ.get("SHIPSTACK_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("no PostgreSQL server for this run")
    from tests.postgres import fresh_database

    with fresh_database(base) as url:
        u = make_url(url)
        backend = f"postgres://{u.username}@{u.host}:{u.port}/{u.database}?sslmode=disable"
        assert errors_when_run_at_once(lambda: backend_store.prepare(backend), 6) == []
        conninfo = u.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo) as conn:
            query = ("SELECT column_name FROM information_schema.columns WHERE table_name = 'pulumi_state' "
                     "ORDER BY ordinal_position")  # fmt: skip
            columns = [r[0] for r in conn.execute(query)]
            index = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'pulumi_state_key_prefix_idx'")
            assert columns == ["key", "data", "updated_at"]
            assert "text_pattern_ops" in index.fetchone()[0]
