"""The user commands' command line: K=V pairs, config words, flags, and what a
usage error looks like to the user (exit 2, a message on stderr, nothing sent)."""

from __future__ import annotations

import argparse

import msgspec
import pytest

from api.cli import run
from api.cli.auto_update import put_body
from api.cli.configure import merged_env
from api.cli.errors import CliError
from api.cli.parser import ConfigAction, auto_update_changes, build_parser, env_dict, env_pair


def parse(*words: str) -> argparse.Namespace:
    return build_parser().parse_args(list(words))


def test_env_pairs() -> None:
    assert env_pair("A=1") == ("A", "1")
    assert env_pair("URL=postgres://u:p@h/db?x=1") == ("URL", "postgres://u:p@h/db?x=1")
    assert env_pair("EMPTY=") == ("EMPTY", "")
    assert env_dict([("A", "1"), ("A", "2"), ("B", "")]) == {"A": "2", "B": ""}
    for bad in ("NOVALUE", "=x", "1A=x", "A-B=x", "A B=x"):
        with pytest.raises(argparse.ArgumentTypeError):
            env_pair(bad)


def test_deploy_flags() -> None:
    args = parse("deploy", "nginx", "--name", "web", "--env", "A=1", "--env", "B=x=y", "--internal", "--team", "7")
    assert (args.command, args.template, args.name, args.internal, args.team) == ("deploy", "nginx", "web", True, 7)
    assert env_dict(args.env) == {"A": "1", "B": "x=y"}
    assert (args.no_wait, args.json) == (False, False)
    args = parse("deploy-image", "nginx:1.27", "--port", "80", "--no-wait", "--json")
    assert (args.image, args.port, args.no_wait, args.json, args.env) == ("nginx:1.27", 80, True, True, None)


def test_logs_and_status_flags() -> None:
    args = parse("logs", "web", "-f", "--tail", "5", "--service", "db")
    assert (args.name, args.follow, args.tail, args.service) == ("web", True, 5, "db")
    assert parse("logs", "web").tail == 100
    args = parse("status", "web", "--wait", "--timeout", "30")
    assert (args.wait, args.timeout) == (True, 30)


def test_config_words() -> None:
    show = ConfigAction(["web"])
    assert (show.action, show.name) == ("show", "web")
    change = ConfigAction(["set", "web", "A=1", "B=2", "A=3"])
    assert (change.action, change.name, change.set) == ("set", "web", {"A": "3", "B": "2"})
    drop = ConfigAction(["unset", "web", "A", "B"])
    assert (drop.action, drop.unset) == ("unset", ["A", "B"])
    for words in (["set", "web"], ["web", "extra"], ["set", "web", "NOEQUALS"], ["unset", "web", "not-a-key"]):
        with pytest.raises(CliError) as info:
            ConfigAction(words)
        assert info.value.exit_code == 2 and "usage: shipstack config" in (info.value.hint or "")


def test_config_set_and_unset_merge_onto_the_current_env() -> None:
    current = {"A": "1", "B": "2"}
    assert merged_env(current, {"B": "3", "C": "4"}, []) == ({"A": "1", "B": "3", "C": "4"}, [])
    assert merged_env(current, {}, ["A", "Z"]) == ({"B": "2"}, ["Z"])
    assert current == {"A": "1", "B": "2"}


def test_auto_update_sends_only_the_flags_given() -> None:
    args = parse("auto-update", "web")
    assert not auto_update_changes(args)
    args = parse("auto-update", "web", "--enable", "--policy", "minor", "--include", "", "--interval", "0")
    assert auto_update_changes(args)
    body = msgspec.json.decode(msgspec.json.encode(put_body(args, enabled=True)))
    assert body == {"deployment_name": "web", "enabled": True, "policy": "minor", "include": None,
                    "intervalSeconds": None}  # fmt: skip
    args = parse("auto-update", "web", "--no-prerelease", "--strategy", "recreate", "--exclude", "beta")
    assert args.enabled is None and auto_update_changes(args)
    body = msgspec.json.decode(msgspec.json.encode(put_body(args, enabled=False)))
    assert body == {"deployment_name": "web", "enabled": False, "strategy": "recreate", "exclude": "beta",
                    "prerelease": False}  # fmt: skip


@pytest.mark.parametrize(
    ("words", "complaint"),
    [
        ([], "required: COMMAND"),
        (["deploy"], "required: template"),
        (["deploy", "nginx", "--env", "lower-case=1"], "not a valid variable name"),
        (["deploy", "nginx", "--env", "NOVALUE"], "expected KEY=VALUE"),
        (["rollback", "web", "two"], "invalid int value"),
        (["auto-update", "web", "--enable", "--disable"], "not allowed with argument"),
        (["auto-update", "web", "--policy", "newest"], "invalid choice"),
        (["logs", "web", "--tail", "-3"], "expected 0 or more"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_before_anything_is_sent(
    words: list[str], complaint: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No login at all: a usage error must be found before credentials are looked for.
    monkeypatch.delenv("SHIPSTACK_URL", raising=False)
    assert run(words) == 2
    out, err = capsys.readouterr()
    assert out == "" and complaint in err and "usage: shipstack" in err


def test_config_usage_error_says_how(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["config", "set", "web"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "error: cannot read `config set web`" in err
    assert "hint: usage: shipstack config NAME | config set NAME K=V ..." in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("login", "deploy-image", "auto-update", "rollback", "keys", "bootstrap"):
        assert command in out
    assert "Exit codes: 0 ok, 1 failed operation" in out
