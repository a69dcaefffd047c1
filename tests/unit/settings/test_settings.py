"""The one settings object: defaults, parsing, errors, and the README's settings table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stacks.settings import Settings, SettingsError
from stacks.variables import DEFAULT_PASSPHRASE, VARIABLES

README = Path(__file__).resolve().parents[3] / "README.md"
ROW = re.compile(r"^\| `([A-Z_]+)` \| (.*?) \| (.*) \|$")


def readme_table() -> dict[str, str]:
    """name -> default cell of the README's settings table (backticks removed, `none` -> "")."""
    rows = {}
    for line in README.read_text().splitlines():
        match = ROW.match(line)
        if match:
            default = match.group(2).strip().strip("`")
            rows[match.group(1)] = "" if default == "none" else default
    return rows


def test_readme_table_names_every_variable_with_its_default() -> None:
    table = readme_table()
    assert table == {v.name: v.default for v in VARIABLES}


def test_defaults_on_an_empty_environment(tmp_path: Path) -> None:
    s = Settings.from_env({"SHIPSTACK_DATA": str(tmp_path)})
    assert s.service.database_url == f"sqlite:///{tmp_path / 'shipstack.db'}"
    assert s.engine.backend_url == f"file://{tmp_path / 'state'}"
    assert s.engine.passphrase == DEFAULT_PASSPHRASE
    assert s.engine.stacks_dir == tmp_path / "stacks"
    assert s.engine.kubeconfig == tmp_path / "cluster" / "kubeconfig"
    assert (s.service.workers, s.service.billing_enabled, s.service.ingress_controller) == (16, False, True)
    assert (s.service.role, s.service.worker_process, s.service.worker_nice) == ("all", True, 10)
    assert (s.engine.rollout_timeout_s, s.auth.rate_limit_per_minute, s.auth.session_ttl_s) == (300, 600, 43200)
    assert (s.scheduler.enabled, s.scheduler.poll_interval_s, s.scheduler.lease_ttl_s) == (True, 300, 30)
    assert (s.registry.credentials, s.registry.insecure_hosts, s.registry.max_pages) == ({}, frozenset(), 20)


@pytest.mark.parametrize(
    ("env", "read", "want"),
    [
        ({"SHIPSTACK_POLL_INTERVAL": "600"}, lambda s: (s.scheduler.poll_interval_s, s.scheduler.tick_s), (600, 60)),
        ({"SHIPSTACK_POLL_INTERVAL": "5"}, lambda s: s.scheduler.tick_s, 5),
        ({"SHIPSTACK_SCHEDULER": "0"}, lambda s: s.scheduler.enabled, False),
        ({"SHIPSTACK_SCHEDULER": "off"}, lambda s: s.scheduler.enabled, False),
        ({"SHIPSTACK_BILLING": "yes"}, lambda s: s.service.billing_enabled, True),
        ({"SHIPSTACK_REGISTRY_INSECURE": "a:5000, b"}, lambda s: s.registry.insecure_hosts, frozenset({"a:5000", "b"})),
        (
            {"SHIPSTACK_REGISTRY_AUTH": '{"ghcr.io": {"username": "u", "password": "p"}}'},
            lambda s: s.registry.credentials["ghcr.io"].username,
            "u",
        ),
        ({"SHIPSTACK_WORKERS": "12"}, lambda s: s.service.workers, 12),
        ({"SHIPSTACK_RATE_LIMIT": "0"}, lambda s: s.auth.rate_limit_per_minute, 0),
        ({"SHIPSTACK_WORKER_PROCESS": "false"}, lambda s: s.service.worker_process, False),
        ({"SHIPSTACK_WORKER_NICE": "0"}, lambda s: s.service.worker_nice, 0),
    ],
)
def test_values_are_parsed(env: dict[str, str], read, want) -> None:  # type: ignore[no-untyped-def]
    assert read(Settings.from_env(env)) == want


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHIPSTACK_POLL_INTERVAL", "0"),
        ("SHIPSTACK_WORKERS", "many"),
        ("SHIPSTACK_WORKERS", "-1"),
        ("SHIPSTACK_BILLING", "maybe"),
        ("SHIPSTACK_ROLLOUT_TIMEOUT", "1.5"),
        ("SHIPSTACK_REGISTRY_AUTH", "{not json"),
        ("SHIPSTACK_WORKER_PROCESS", "sometimes"),
        ("SHIPSTACK_WORKER_NICE", "20"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_registry_credentials_never_appear_in_errors_or_repr() -> None:
    with pytest.raises(SettingsError) as bad:
        Settings.from_env({"SHIPSTACK_REGISTRY_AUTH": '{"h": {"username": "u", "password": "hunter2"'})
    assert "hunter2" not in str(bad.value)
    good = Settings.from_env({"SHIPSTACK_REGISTRY_AUTH": '{"h": {"username": "u", "password": "hunter2"}}'})
    assert "hunter2" not in repr(good.registry)
