"""The operator's namespace rules as data: quantities, label selectors, validation,
the quota budget, and how they travel in stack config and revision messages."""

from __future__ import annotations

import msgspec
import pytest

from programs.budget import budget_errors, peak_pods
from programs.describe import describe_change
from programs.quantities import byte_count, cpu_millis, show_bytes, show_cpu
from programs.spec import KEY_TENANCY, SpecConfigError, config_to_spec, spec_to_config
from programs.templates import load_catalog, resolve_services, validate_for_template
from programs.tenancy import Compute, Quota, Resources, Tenancy, parse_label_selector, validate_tenancy
from programs.validate import validate_spec
from tests.unit.programs.pulumi_mocks import spec

GI = 2**30


@pytest.mark.parametrize(
    ("text", "millis"),
    [("250m", 250), ("1", 1000), ("1.5", 1500), ("2.125", 2125), ("16", 16000),
     ("0", None), ("0m", None), ("01m", None), ("1.0005", None), ("1e3", None), ("-1", None), ("", None), (2, None)],
)  # fmt: skip
def test_cpu_millis(text: object, millis: int | None) -> None:
    assert cpu_millis(text) == millis


@pytest.mark.parametrize(
    ("text", "count"),
    [("64Mi", 64 * 2**20), ("1Gi", GI), ("1Ti", 2**40), ("512Ki", 512 * 1024),
     ("1G", None), ("0Mi", None), ("1.5Gi", None), ("Gi", None), (" 1Gi", None)],
)  # fmt: skip
def test_byte_count(text: str, count: int | None) -> None:
    assert byte_count(text) == count


def test_amounts_in_messages() -> None:
    assert [show_cpu(m) for m in (250, 1000, 1500, 12500, 2125)] == ["250m", "1", "1.5", "12.5", "2125m"]
    assert [show_bytes(n) for n in (GI, 1280 * 2**20, 512 * 2**20, 4096)] == ["1Gi", "1.25Gi", "512Mi", "4Ki"]


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("kubernetes.io/metadata.name=ingress-nginx", {"kubernetes.io/metadata.name": "ingress-nginx"}),
        ("team=edge, tier=ingress", {"team": "edge", "tier": "ingress"}),
        ("empty=", {"empty": ""}),
    ],
)
def test_parse_label_selector(text: str, labels: dict[str, str]) -> None:
    assert parse_label_selector(text) == labels


@pytest.mark.parametrize(
    ("text", "needle"),
    [("", "at least one label"), (" , ", "at least one label"), ("novalue", "not key=value"),
     ("bad key=x", "label key"), ("k=bad value", "label value"), ("Upper.Prefix/k=v", "label key"),
     ("k=" + "v" * 64, "label value")],
)  # fmt: skip
def test_bad_label_selectors(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_label_selector(text)


SIZE = Resources(requests=Compute(cpu="100m", memory="128Mi"), limits=Compute(cpu="1", memory="1Gi"))


@pytest.mark.parametrize(
    ("tenancy", "needle"),
    [
        (Tenancy(ingress_namespace={}), "every namespace"),
        (Tenancy(egress_deny=("10.0.0.0/33",)), "CIDR"),
        (Tenancy(egress_deny=("10.0.0.1/8",)), "CIDR"),  # host bits set: a typo, not a network
        (Tenancy(egress_deny=("0.0.0.0/0",)), "whole address family"),
        (Tenancy(quota=Quota(cpu="lots")), "quota cpu"),
        (Tenancy(quota=Quota(memory="4GB")), "quota memory"),
        (Tenancy(quota=Quota(storage="1T")), "quota storage"),
        (Tenancy(quota=Quota(pods=0)), "pods must be at least 1"),
        (Tenancy(container_max=Compute(cpu="100m", memory="8Gi")), "at least the default limits"),
        (Tenancy(resources={"nginx": {"nginx": Resources(requests=SIZE.limits, limits=SIZE.requests)}}),
         "resources of nginx/nginx requests must not exceed its limits"),
    ],
)  # fmt: skip
def test_invalid_operator_rules(tenancy: Tenancy, needle: str) -> None:
    errors = validate_tenancy(tenancy)
    assert any(needle in e for e in errors), errors
    assert any(needle in e for e in validate_spec(spec(tenancy=tenancy)))


def test_default_rules_are_valid() -> None:
    assert validate_tenancy(Tenancy()) == []


@pytest.mark.parametrize(("replicas", "strategy", "peak"), [(1, "RollingUpdate", 2), (4, "RollingUpdate", 5),
                         (5, "RollingUpdate", 7), (20, "RollingUpdate", 25), (20, "Recreate", 20)])  # fmt: skip
def test_peak_pods(replicas: int, strategy: str, peak: int) -> None:
    assert peak_pods(replicas, strategy) == peak


@pytest.mark.parametrize("template", sorted(load_catalog()))
@pytest.mark.parametrize("strategy", ["rolling", "recreate"])
def test_the_largest_spec_fits_the_default_quota(template: str, strategy: str) -> None:
    """No spec the input rules allow is refused by the default namespace rules."""
    s = spec(template=template, replicas=20, strategy=strategy, image="app:1" if template == "image" else None,
             env={"POSTGRES_PASSWORD": "pw"})  # fmt: skip
    assert validate_for_template(load_catalog()[template], s) == []


def test_budget_counts_every_service_and_volume() -> None:
    webapp = load_catalog()["webapp"]
    services = resolve_services(webapp, spec(template="webapp", replicas=3))
    # app: 3 + 1 surge pods of 500m/256Mi; db: 1 pod (Recreate) of 1 CPU/1Gi and a 1Gi claim.
    # So 5 pods, 3 CPU, 2Gi, 1 claim of 1Gi: CPU and memory fit exactly, the rest does not.
    tight = Tenancy(quota=Quota(pods=4, cpu="3", memory="2Gi", volume_claims=0, storage="512Mi"))
    assert budget_errors(services, tight) == [
        "the deployment needs 5 pods at most during an update; its namespace quota allows 4",
        "the deployment needs 1 volume claims at most during an update; its namespace quota allows 0",
        "the deployment needs 1Gi volume storage at most during an update; its namespace quota allows 512Mi",
    ]
    exact = Tenancy(quota=Quota(pods=5, cpu="3", memory="2Gi", volume_claims=1, storage="1Gi"))
    assert budget_errors(services, exact) == []


# --- in stack config and revision messages ---------------------------------------------


def test_rules_round_trip_through_stack_config() -> None:
    rules = Tenancy(
        ingress_namespace={"team": "edge"},
        egress_deny=("10.0.0.0/8",),
        quota=Quota(pods=9),
        resources={"nginx": {"nginx": SIZE}},
    )
    original = spec(tenancy=rules)
    config = spec_to_config(original)
    value, secret = config[KEY_TENANCY]
    assert not secret  # operator settings, not user secrets: readable in `pulumi config`
    assert msgspec.json.decode(value)["quota"]["pods"] == 9
    assert config_to_spec({k: v for k, (v, _) in config.items()}) == original


def test_a_revision_without_rules_gets_the_defaults() -> None:
    config = {k: v for k, (v, _) in spec_to_config(spec()).items() if k != KEY_TENANCY}
    assert config_to_spec(config).tenancy == Tenancy()


def test_corrupt_rules_in_config_name_the_key() -> None:
    config = {k: v for k, (v, _) in spec_to_config(spec()).items()} | {KEY_TENANCY: '{"quota": {"pods": "x"}}'}
    with pytest.raises(SpecConfigError, match=KEY_TENANCY):
        config_to_spec(config)


def test_revision_message_names_the_rules_that_changed() -> None:
    before = spec()
    after = spec(tenancy=Tenancy(quota=Quota(pods=9), egress_deny=()))
    assert describe_change(before, after) == "namespace rules changed: egress rules, quota"
