"""What confines a deployment, as the program renders it (under Pulumi's mocks): the
NetworkPolicy, ResourceQuota and LimitRange of its namespace, the size and security
context of every container, and redis's password."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from programs.deployment import InvalidSpecError
from programs.templates import fill_generated_env, keep_generated_env, load_catalog
from programs.tenancy import Compute, Quota, Resources, Tenancy
from tests.unit.programs.pulumi_mocks import (
    DEPLOYMENT,
    LIMIT_RANGE,
    NETWORK_POLICY,
    RESOURCE_QUOTA,
    SECRET,
    attempt,
    deploy,
    plain,
    spec,
)

NS = "sd-abc123xyz7"
PASSWORDS = {"POSTGRES_PASSWORD": "pw", "REDIS_PASSWORD": "pw"}


def policy(template: str, monkeypatch: pytest.MonkeyPatch, **kw: object) -> dict[str, Any]:
    run = deploy(spec(template=template, env=PASSWORDS, **kw), monkeypatch)
    found = run.get(NETWORK_POLICY, "isolation")
    assert found["metadata"]["namespace"] == NS
    return found["spec"]


def test_network_policy_isolates_every_pod_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = policy("webapp", monkeypatch)
    assert rules["podSelector"] == {"matchLabels": {}}  # every pod of the namespace
    assert rules["policyTypes"] == ["Ingress", "Egress"]
    same_namespace, from_controller = rules["ingress"]
    assert same_namespace == {"from": [{"podSelector": {"matchLabels": {}}}]}
    # The ingress controller reaches only the public service's port (app: 80), not the db.
    assert from_controller["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    assert [(p["port"], p["protocol"]) for p in from_controller["ports"]] == [(80, "TCP")]


def test_internal_deployments_accept_nothing_from_the_ingress_controller(monkeypatch: pytest.MonkeyPatch) -> None:
    assert policy("nginx", monkeypatch, visibility="internal")["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {}}}]}
    ]
    assert len(policy("redis", monkeypatch)["ingress"]) == 1  # redis is never public


def test_egress_reaches_the_namespace_dns_and_the_internet_but_no_private_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    to_namespace, dns, internet = policy("nginx", monkeypatch)["egress"]
    assert to_namespace == {"to": [{"podSelector": {"matchLabels": {}}}]}
    assert "to" not in dns
    assert sorted((p["port"], p["protocol"]) for p in dns["ports"]) == [(53, "TCP"), (53, "UDP")]
    v4, v6 = (peer["ipBlock"] for peer in internet["to"])
    assert v4["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(v4["except"])
    assert v6["cidr"] == "::/0"
    assert "fc00::/7" in v6["except"]
    assert "ports" not in internet


def test_operator_sets_the_ingress_namespace_and_the_denied_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    tenancy = Tenancy(ingress_namespace={"team": "edge", "tier": "ingress"}, egress_deny=("10.0.0.0/8",))
    rules = policy("nginx", monkeypatch, tenancy=tenancy)
    assert rules["ingress"][1]["from"][0]["namespaceSelector"]["matchLabels"] == {"team": "edge", "tier": "ingress"}
    v4, v6 = (peer["ipBlock"] for peer in rules["egress"][2]["to"])
    assert v4["except"] == ["10.0.0.0/8"]
    assert "except" not in v6  # nothing denied in IPv6: the whole family is open


def test_resource_quota_and_limit_range(monkeypatch: pytest.MonkeyPatch) -> None:
    tenancy = Tenancy(
        quota=Quota(cpu="6", memory="3Gi", pods=12, volume_claims=1, storage="5Gi"),
        container_max=Compute(cpu="2", memory="2Gi"),
    )
    run = deploy(spec(template="postgres", env=PASSWORDS, tenancy=tenancy), monkeypatch)
    quota = run.get(RESOURCE_QUOTA, "quota")
    assert quota["metadata"]["namespace"] == NS
    assert quota["spec"]["hard"] == {
        "pods": "12",
        "limits.cpu": "6",
        "limits.memory": "3Gi",
        "persistentvolumeclaims": "1",
        "requests.storage": "5Gi",
        "services.nodeports": "0",
        "services.loadbalancers": "0",
    }
    # Pods wait for the quota's status: before it, the API server refuses them.
    assert quota["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.status.hard}"
    (limits,) = run.get(LIMIT_RANGE, "limits")["spec"]["limits"]
    assert limits["type"] == "Container"
    assert limits["max"] == {"cpu": "2", "memory": "2Gi"}
    assert limits["default"] == {"cpu": "500m", "memory": "256Mi"}
    assert limits["defaultRequest"] == {"cpu": "50m", "memory": "64Mi"}


@pytest.mark.parametrize(
    ("template", "service", "requests", "limits"),
    [
        ("nginx", "nginx", ("50m", "64Mi"), ("500m", "256Mi")),
        ("image", "app", ("100m", "128Mi"), ("500m", "512Mi")),
        ("redis", "redis", ("50m", "64Mi"), ("500m", "256Mi")),
        ("postgres", "postgres", ("250m", "256Mi"), ("1", "1Gi")),
        ("webapp", "app", ("50m", "64Mi"), ("500m", "256Mi")),
        ("webapp", "db", ("250m", "256Mi"), ("1", "1Gi")),
    ],
)
def test_every_container_gets_its_template_size(
    template: str, service: str, requests: tuple[str, str], limits: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = deploy(spec(template=template, image="app:1" if template == "image" else None, env=PASSWORDS), monkeypatch)
    resources = run.container(service)["resources"]
    assert (resources["requests"]["cpu"], resources["requests"]["memory"]) == requests
    assert (resources["limits"]["cpu"], resources["limits"]["memory"]) == limits


def test_the_operator_resizes_a_template_service(monkeypatch: pytest.MonkeyPatch) -> None:
    bigger = Resources(requests=Compute(cpu="1", memory="1Gi"), limits=Compute(cpu="2", memory="2Gi"))
    tenancy = Tenancy(resources={"webapp": {"db": bigger}, "nginx": {"nginx": bigger}})
    run = deploy(spec(template="webapp", env=PASSWORDS, tenancy=tenancy), monkeypatch)
    assert run.container("db")["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    assert run.container("app")["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}


def test_every_container_runs_unprivileged(monkeypatch: pytest.MonkeyPatch) -> None:
    run = deploy(spec(template="webapp", env=PASSWORDS), monkeypatch)
    for name in ("app", "db"):
        assert run.container(name)["securityContext"] == {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["NET_RAW"]},
        }
        assert run.pod(name)["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}


@pytest.mark.parametrize(
    ("tenancy", "needle"),
    [
        (Tenancy(quota=Quota(pods=4)), "needs 5 pods at most during an update; its namespace quota allows 4"),
        (Tenancy(quota=Quota(cpu="2")), "needs 2.5 CPU (limits)"),
        (Tenancy(quota=Quota(memory="1Gi")), "needs 1.25Gi memory (limits)"),
        (
            Tenancy(
                container_max=Compute(cpu="500m", memory="256Mi"),
                resources={
                    "nginx": {
                        "nginx": Resources(
                            requests=Compute(cpu="1", memory="64Mi"), limits=Compute(cpu="1", memory="64Mi")
                        )
                    }
                },
            ),
            "service nginx: limits (1 CPU, 64Mi) exceed the largest container allowed (500m CPU, 256Mi)",
        ),
    ],
)
def test_a_deployment_that_cannot_fit_its_namespace_creates_nothing(tenancy: Tenancy, needle: str) -> None:
    # 4 replicas + 1 surge pod of nginx (500m, 256Mi each).
    created, error = attempt(spec(replicas=4, tenancy=tenancy))
    assert isinstance(error, InvalidSpecError)
    assert needle in str(error)
    assert [x.typ for x in created if x.typ.startswith("kubernetes:")] == []


# --- redis: a password, required -------------------------------------------------------


def test_redis_gets_a_generated_password_kept_across_env_updates() -> None:
    redis = load_catalog()["redis"]
    created = fill_generated_env(redis, {"MAXMEMORY": "64mb"}, random.Random(7))
    password = created["REDIS_PASSWORD"]
    assert len(password) == 32 and password.isalnum()
    replaced = keep_generated_env(redis, created, {"OTHER": "1"})
    assert replaced == {"OTHER": "1", "REDIS_PASSWORD": password}


@pytest.mark.parametrize("password", ["Abc123", 'spa ce "quote" back\\slash\nrequirepass x', "ünï$(HOME)"])
def test_redis_reads_its_password_from_stdin_config_never_from_arguments(
    password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = deploy(spec(template="redis", env={"REDIS_PASSWORD": password}), monkeypatch)
    env = run.secret_env("redis")
    assert env["REDIS_PASSWORD"] == password
    # Every byte escaped: a newline cannot add a directive, a quote cannot end the string.
    assert env["REDIS_CONFIG"] == 'requirepass "' + "".join(f"\\x{b:02x}" for b in password.encode()) + '"'
    container = run.container("redis")
    command = container["command"]
    assert command[:2] == ["sh", "-c"]
    assert "redis-server -" in command[2] and "$REDIS_CONFIG" in command[2]
    assert "args" not in container
    rendered = msgspec.json.encode(plain(run.get(DEPLOYMENT, "redis"))).decode()
    assert password not in rendered and msgspec.json.encode(password).decode()[1:-1] not in rendered
    assert all(password not in msgspec.json.encode(plain(x.inputs)).decode() for x in run.created if x.typ != SECRET)
