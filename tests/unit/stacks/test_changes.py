"""apply_change: a queued delta applied to the spec the stack holds."""

from __future__ import annotations

import pytest

from programs.spec import AutoUpdate, DeploymentSpec
from programs.tenancy import Compute, Quota, Resources, Tenancy
from stacks.changes import Change, apply_change, with_placement

BASE = DeploymentSpec(name="abc123xyz7", template="nginx", base_domain="example.test", env={"A": "1"})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (Change(), BASE),
        (Change(env={"B": "2"}), DeploymentSpec(name="abc123xyz7", template="nginx", base_domain="example.test",
                                                env={"B": "2"})),
        (Change(env={}), DeploymentSpec(name="abc123xyz7", template="nginx", base_domain="example.test", env={})),
        (Change(image="nginx:1.26"), DeploymentSpec(name="abc123xyz7", template="nginx", base_domain="example.test",
                                                    env={"A": "1"}, image="nginx:1.26")),
        (Change(restart_stamp="2026-01-01T00:00:00Z"),
         DeploymentSpec(name="abc123xyz7", template="nginx", base_domain="example.test", env={"A": "1"},
                        restart_stamp="2026-01-01T00:00:00Z")),
        (Change(strategy="recreate", auto_update=AutoUpdate(enabled=True, policy="patch")),
         DeploymentSpec(name="abc123xyz7", template="nginx", base_domain="example.test", env={"A": "1"},
                        strategy="recreate", auto_update=AutoUpdate(enabled=True, policy="patch"))),
        (Change(rollback_version=3), BASE),  # resolved by the engine, not here
    ],
)  # fmt: skip
def test_apply_change(change: Change, expected: DeploymentSpec) -> None:
    assert apply_change(BASE, change) == expected


def test_same_env_is_no_change() -> None:
    assert apply_change(BASE, Change(env={"A": "1"})) == BASE


def test_placement_overrides_an_old_revision() -> None:
    moved = with_placement(BASE, "apps.example.com", False)
    assert (moved.base_domain, moved.ingress_controller) == ("apps.example.com", False)
    assert moved.env == BASE.env
    assert moved.tenancy == BASE.tenancy  # no operator rules given: the spec's are kept


def test_placement_brings_the_operators_namespace_rules_for_this_template() -> None:
    size = Resources(requests=Compute(cpu="1", memory="1Gi"), limits=Compute(cpu="2", memory="2Gi"))
    rules = Tenancy(quota=Quota(pods=8), resources={"nginx": {"nginx": size}, "postgres": {"postgres": size}})
    moved = with_placement(BASE, "example.test", True, rules)
    assert moved.tenancy.quota.pods == 8
    assert moved.tenancy.resources == {"nginx": {"nginx": size}}  # not postgres's: not this spec's business


def test_new_env_keeps_generated_secrets() -> None:
    from programs.templates import load_catalog

    pg = DeploymentSpec(name="db1", template="postgres", base_domain="example.test",
                        env={"POSTGRES_PASSWORD": "generated", "A": "1"})  # fmt: skip
    after = apply_change(pg, Change(env={"B": "2"}), load_catalog()["postgres"])
    assert after.env == {"POSTGRES_PASSWORD": "generated", "B": "2"}
