"""Where the login is kept, who can read it, and which URL and key a command uses."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from api.cli import run, userconfig
from api.cli.errors import CliError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_folder_follows_xdg_config_home(tmp_path: Path) -> None:
    assert userconfig.config_path({"XDG_CONFIG_HOME": str(tmp_path / "x"), "HOME": "/h"}) == (
        tmp_path / "x" / "shipstack" / "config.json"
    )
    assert userconfig.config_path({"HOME": "/h"}) == Path("/h/.config/shipstack/config.json")
    assert userconfig.config_path({"XDG_CONFIG_HOME": "", "HOME": "/h"}) == Path("/h/.config/shipstack/config.json")


def test_only_the_owner_can_read_the_key(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "shipstack" / "config.json"
    path.parent.mkdir(parents=True, mode=0o755)  # a folder others can read, made earlier
    old = os.umask(0)  # the most permissive umask must not widen the modes
    try:
        userconfig.save(path, userconfig.Login(url="http://h:1", token="ssk_secret"))
    finally:
        os.umask(old)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert userconfig.load(path) == userconfig.Login(url="http://h:1", token="ssk_secret")
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary file left
    userconfig.save(path, userconfig.Login(url="http://h:2", token="ssk_other"))
    assert mode(path) == 0o600 and userconfig.load(path).url == "http://h:2"  # type: ignore[union-attr]


def test_the_environment_overrides_the_stored_login(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    userconfig.save(userconfig.config_path(env), userconfig.Login(url="http://stored:1", token="ssk_stored"))
    assert userconfig.resolve(env) == userconfig.Login(url="http://stored:1", token="ssk_stored")
    assert userconfig.resolve({**env, "SHIPSTACK_TOKEN": "ssk_env"}).token == "ssk_env"
    both = userconfig.resolve({**env, "SHIPSTACK_URL": "other:2/", "SHIPSTACK_TOKEN": "ssk_env"})
    assert both == userconfig.Login(url="http://other:2", token="ssk_env")


def test_without_a_login_a_command_says_to_log_in(tmp_path: Path) -> None:
    with pytest.raises(CliError) as info:
        userconfig.resolve({"XDG_CONFIG_HOME": str(tmp_path)})
    assert info.value.exit_code == 4 and info.value.message == "not logged in: no service URL and API key"
    assert "shipstack login URL" in (info.value.hint or "")
    with pytest.raises(CliError) as info:
        userconfig.resolve({"XDG_CONFIG_HOME": str(tmp_path), "SHIPSTACK_URL": "http://h"})
    assert info.value.message == "not logged in: no API key"
    bad = userconfig.config_path({"XDG_CONFIG_HOME": str(tmp_path)})
    bad.parent.mkdir(parents=True)
    bad.write_text("not json")
    with pytest.raises(CliError) as info:
        userconfig.resolve({"XDG_CONFIG_HOME": str(tmp_path)})
    assert info.value.exit_code == 4 and "is not a shipstack login file" in info.value.message


def test_urls() -> None:
    assert userconfig.normalize_url(" https://x.example/ ") == "https://x.example"
    assert userconfig.normalize_url("localhost:8000") == "http://localhost:8000"
    for bad in ("", "ftp://x"):
        with pytest.raises(CliError):
            userconfig.normalize_url(bad)


def test_logout_and_an_empty_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = userconfig.config_path()
    userconfig.save(path, userconfig.Login(url="http://h:1", token="ssk_x"))
    assert run(["logout"]) == 0
    assert not path.exists() and f"logged out: removed {path}" in capsys.readouterr().err
    assert run(["logout"]) == 0
    assert "not logged in" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert run(["login", "http://h:1", "--token-stdin"]) == 2
    assert "error: no API key given" in capsys.readouterr().err
    assert not path.exists()
