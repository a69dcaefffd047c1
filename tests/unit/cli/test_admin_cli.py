"""The `shipstack` CLI against a real database, and its keys against the real app."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import main
from persistence.db import make_engine
from stacks.settings import Settings
from tests.concurrent import busy_writer, errors_when_run_at_once
from tests.seed import MakeClient, bearer

REPO = Path(__file__).resolve().parents[3]


def run(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), settings=settings)
    out, err = capsys.readouterr()
    return code, out, err


def test_bootstrap_then_manage_accounts(
    app_settings: Settings, capsys: pytest.CaptureFixture[str], make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(app_settings, capsys, "bootstrap")
    assert code == 0
    admin_key = out.strip()
    assert admin_key.startswith("ssk_") and "\n" not in admin_key
    assert "shown only now" in err
    # Idempotent: a second bootstrap creates nothing and prints no key.
    code, out, err = run(app_settings, capsys, "bootstrap")
    assert (code, out) == (0, "")
    assert "already" in err

    monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-password\n"))
    assert run(app_settings, capsys, "users", "create", "bob", "--password-stdin")[0] == 0
    assert run(app_settings, capsys, "users", "create", "carol", "--tier", "business")[0] == 0
    assert run(app_settings, capsys, "teams", "create", "red", "--owner", "bob")[0] == 0
    assert run(app_settings, capsys, "teams", "add-member", "red", "carol", "--role", "member")[0] == 0
    code, out, err = run(
        app_settings,
        capsys,
        *("keys", "create", "--user", "bob", "--scopes", "deployments:read,deployments:write"),
        *("--name", "ci", "--expires-days", "7", "--team", "red"),
    )
    assert code == 0
    bob_key = out.strip()
    assert bob_key.startswith("ssk_") and bob_key[:12] in err

    client = make_client(app_settings)
    me = client.get("/api/auth/me", headers=bearer(bob_key)).json()
    assert me["user"]["name"] == "bob" and me["bound_team_id"] is not None
    assert me["scopes"] == ["deployments:read", "deployments:write"]
    assert client.get("/api/admin/users", headers=bearer(admin_key)).status_code == 200
    login = client.post("/api/auth/login", json={"name": "bob", "password": "a-long-password"})
    assert login.status_code == 200

    code, out, _ = run(app_settings, capsys, "keys", "list", "--user", "bob")
    assert bob_key[:12] in out and bob_key[13:] not in out
    assert run(app_settings, capsys, "keys", "revoke", bob_key[:12])[0] == 0
    assert client.get("/api/auth/me", headers=bearer(bob_key)).status_code == 401

    assert run(app_settings, capsys, "users", "set-tier", "bob", "enterprise")[0] == 0
    assert run(app_settings, capsys, "teams", "set-tier", "red", "business")[0] == 0
    code, out, _ = run(app_settings, capsys, "billing", "events")
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert "tier.changed" in lines[0] and "team=red" in lines[0] and "to=business" in lines[0]
    assert "user=bob" in lines[1] and "to=enterprise" in lines[1]


def test_errors_exit_with_their_kind_and_a_message(app_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit codes scripts can use: 1 failed (a conflict), 2 bad input, 3 not found."""
    code, out, err = run(app_settings, capsys, "keys", "create", "--user", "ghost", "--scopes", "deployments:read")
    assert (code, out) == (3, "")
    assert "User 'ghost' not found" in err
    run(app_settings, capsys, "users", "create", "bob")
    code, _, err = run(app_settings, capsys, "users", "create", "bob")
    assert code == 1 and "taken" in err
    code, _, err = run(app_settings, capsys, "keys", "create", "--user", "bob", "--scopes", "admin")
    assert code == 2 and "not an admin" in err
    code, _, err = run(app_settings, capsys, "keys", "revoke", "ssk_nothing0")
    assert code == 3


def test_shipstack_module_entry_point(app_settings: Settings) -> None:
    env = {
        **os.environ,
        "SHIPSTACK_DATA": str(app_settings.service.data_dir),
        "SHIPSTACK_DATABASE_URL": app_settings.service.database_url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "bootstrap", "--name", "ops"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ssk_")
    assert "created admin user 'ops'" in result.stderr


def test_bootstrap_succeeds_while_another_process_keeps_writing(
    app_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker already running on the database commits every second (its lease, the
    scheduler's): the bootstrap that `serve` runs first must wait its turn, not fail
    with "database is locked" because a commit landed between its read and its write."""
    assert main(["migrate"], settings=app_settings) == 0
    engine = make_engine(app_settings.service.database_url)
    try:
        with busy_writer(engine):
            code, out, err = run(app_settings, capsys, "bootstrap")
    finally:
        engine.dispose()
    assert code == 0, err
    assert out.strip().startswith("ssk_")


def test_replicas_bootstrapping_at_once_make_one_admin_and_all_start(app_settings: Settings) -> None:
    """Several `serve` replicas starting together on an empty database each run
    bootstrap: one creates the admin, the others find it, and none fails."""
    assert main(["migrate"], settings=app_settings) == 0
    codes: list[int] = []
    errors = errors_when_run_at_once(lambda: codes.append(main(["bootstrap"], settings=app_settings)), 4)
    assert errors == []
    assert codes == [0, 0, 0, 0]
    engine = make_engine(app_settings.service.database_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT name FROM users").scalars().all() == ["admin"]
            assert conn.exec_driver_sql("SELECT count(*) FROM api_keys").scalar() == 1
    finally:
        engine.dispose()
