"""A deployment's drift settings as part of its spec: stored in stack config with the
rest, a stack older than drift detection reads as the defaults, the input rules,
the revision message, and a queued change of them."""

from __future__ import annotations

import pytest

from programs.describe import describe_change
from programs.spec import KEY_DRIFT, DeploymentSpec, DriftSettings, config_to_spec, drift_settings_of, spec_to_config
from programs.validate import validate_drift, validate_spec
from stacks.changes import Change, apply_change

BASE = DeploymentSpec(name="shop", template="nginx", base_domain="ex.com")


@pytest.mark.parametrize(
    "drift",
    [DriftSettings(), DriftSettings(policy="reconcile"), DriftSettings(interval_s=0), DriftSettings(interval_s=600)],
)
def test_drift_settings_round_trip_through_stack_config(drift: DriftSettings) -> None:
    spec = DeploymentSpec(name="shop", template="nginx", base_domain="ex.com", drift=drift)
    config = spec_to_config(spec)
    assert config[KEY_DRIFT][1] is False  # plain: the scheduler reads it without the passphrase
    assert config_to_spec({k: v for k, (v, _) in config.items()}) == spec


def test_a_stack_older_than_drift_detection_has_the_defaults() -> None:
    plain = {k: v for k, (v, _) in spec_to_config(BASE).items() if k != KEY_DRIFT}
    assert config_to_spec(plain).drift == DriftSettings(policy="report", interval_s=None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, DriftSettings()),
        ("", DriftSettings()),
        ('{"policy":"reconcile","interval_s":900}', DriftSettings(policy="reconcile", interval_s=900)),
        ("not json", DriftSettings()),  # hand-edited: a check is never refused over its own settings
        ('{"policy":"sometimes"}', DriftSettings()),
    ],
)
def test_drift_settings_of(raw: str | None, expected: DriftSettings) -> None:
    assert drift_settings_of(raw) == expected


@pytest.mark.parametrize(
    ("drift", "errors"),
    [
        (DriftSettings(), 0),
        (DriftSettings(policy="reconcile", interval_s=60), 0),
        (DriftSettings(interval_s=0), 0),
        (DriftSettings(interval_s=30 * 24 * 3600), 0),
        (DriftSettings(interval_s=59), 1),
        (DriftSettings(interval_s=30 * 24 * 3600 + 1), 1),
        (DriftSettings(interval_s=-5), 1),
        (DriftSettings(interval_s=True), 1),  # type: ignore[arg-type]
        (DriftSettings(policy="fix"), 1),  # type: ignore[arg-type]
        (DriftSettings(policy="fix", interval_s=1), 2),  # type: ignore[arg-type]
    ],
)
def test_drift_rules(drift: DriftSettings, errors: int) -> None:
    assert len(validate_drift(drift)) == errors
    spec = DeploymentSpec(name="shop", template="nginx", base_domain="ex.com", drift=drift)
    assert len([e for e in validate_spec(spec) if e.startswith("drift")]) == errors


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        (DriftSettings(policy="reconcile"), "drift policy report -> reconcile"),
        (DriftSettings(interval_s=600), "drift interval default -> 600"),
        (DriftSettings(policy="reconcile", interval_s=0), "drift policy report -> reconcile, interval default -> 0"),
    ],
)
def test_a_change_of_drift_settings_is_described(drift: DriftSettings, message: str) -> None:
    changed = apply_change(BASE, Change(drift=drift))
    assert changed.drift == drift and changed.env == BASE.env
    assert describe_change(BASE, changed) == message


def test_a_change_without_drift_keeps_the_settings() -> None:
    spec = apply_change(BASE, Change(drift=DriftSettings(policy="reconcile")))
    assert apply_change(spec, Change(image="nginx:1.27")).drift == DriftSettings(policy="reconcile")
