"""programs.deployment under Pulumi's mocks: the Kubernetes objects a spec turns into.

The mocks record what the program asks the engine to create (type, name, inputs,
provider), which is what `pulumi preview` would show and what the provider would apply.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pulumi
import pytest
import yaml
from pulumi.runtime.mocks import MockMonitor

from programs import deployment
from programs.deployment import InvalidSpecError, build, program_from_config
from programs.labels import ANNOTATION_ENV_CHECKSUM, ANNOTATION_RESTARTED_AT, ANNOTATION_SKIP_AWAIT
from programs.provider import make_provider
from programs.spec import (
    KEY_CLUSTER_IDENTIFIER,
    KEY_KUBECONFIG,
    PROGRAM_VERSION,
    DeploymentSpec,
    SpecConfigError,
    spec_to_config,
)
from programs.workload import env_checksum
from tests.unit.programs.pulumi_mocks import (
    DEPLOYMENT,
    INGRESS,
    KUBECONFIG,
    NAMESPACE,
    PROVIDER,
    PVC,
    SECRET,
    SERVICE,
    RecordingMocks,
    Run,
    deploy,
    is_secret,
    plain,
    run,
    spec,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


# --- one service: nginx --------------------------------------------------------------


def test_nginx_creates_the_expected_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    r = deploy(spec(env={"PORT": "8080"}), monkeypatch)
    assert r.names(NAMESPACE) == ["sd-abc123xyz7"]
    assert r.names(SECRET) == ["nginx-env"]
    assert r.names(DEPLOYMENT) == ["nginx"]
    assert r.names(SERVICE) == ["nginx"]
    assert r.names(INGRESS) == ["nginx"]
    assert r.of(PVC) == []
    for typ in (SECRET, DEPLOYMENT, SERVICE, INGRESS):
        assert r.get(typ, "nginx" if typ != SECRET else "nginx-env")["metadata"]["namespace"] == "sd-abc123xyz7"


def test_namespace_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    labels = deploy(spec(), monkeypatch).get(NAMESPACE, "sd-abc123xyz7")["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "shipstack"
    assert labels["shipstack.dev/deployment"] == "abc123xyz7"


def test_every_object_uses_the_explicit_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    r = deploy(spec(template="webapp", env={"POSTGRES_PASSWORD": "pw"}), monkeypatch)
    assert len(r.of(PROVIDER)) == 1
    k8s_objects = [x for x in r.created if x.typ.startswith("kubernetes:")]
    # namespace + its policy, quota and limit range + app (4) + db (4)
    assert len(k8s_objects) == 12
    for obj in k8s_objects:
        # A provider reference is "<provider urn>::<provider id>".
        assert obj.provider.endswith(f"${PROVIDER}::k8s::k8s-id"), obj.name


def test_provider_settings_do_not_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/somewhere/else")
    monkeypatch.setenv("PULUMI_K8S_DELETE_UNREACHABLE", "true")
    monkeypatch.setenv("PULUMI_K8S_ENABLE_SERVER_SIDE_APPLY", "false")
    r = deploy(spec(), monkeypatch)
    (provider,) = r.of(PROVIDER)
    assert is_secret(provider.inputs["kubeconfig"])
    settings = plain(provider.inputs)
    assert settings["kubeconfig"] == KUBECONFIG
    assert settings["deleteUnreachable"] in ("false", False)
    assert settings["enableServerSideApply"] in ("true", True)
    assert settings["enableSecretMutable"] in ("true", True)
    assert settings["clusterIdentifier"] == "shipstack"


def test_deployment_pod_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    r = deploy(spec(replicas=3), monkeypatch)
    d = r.get(DEPLOYMENT, "nginx")
    assert d["spec"]["replicas"] == 3
    selector = d["spec"]["selector"]["matchLabels"]
    assert selector == {"shipstack.dev/deployment": "abc123xyz7", "shipstack.dev/service": "nginx"}
    pod = r.pod("nginx")
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["enableServiceLinks"] is False
    assert pod["spec"]["automountServiceAccountToken"] is False
    c = r.container("nginx")
    assert c["image"] == "nginx:1.27"
    assert c["ports"][0]["containerPort"] == 80
    assert c["envFrom"] == [{"secretRef": {"name": "nginx-env"}}]
    assert c["readinessProbe"]["tcpSocket"] == {"port": 80}


def test_service_is_cluster_ip_on_the_template_port(monkeypatch: pytest.MonkeyPatch) -> None:
    svc = deploy(spec(), monkeypatch).get(SERVICE, "nginx")["spec"]
    assert svc["type"] == "ClusterIP"
    assert svc["selector"] == {
        "shipstack.dev/deployment": "abc123xyz7",
        "shipstack.dev/service": "nginx",
    }
    assert [(p["port"], p["targetPort"]) for p in svc["ports"]] == [(80, 80)]


def test_public_ingress_and_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    r = deploy(spec(), monkeypatch)
    ingress = r.get(INGRESS, "nginx")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "abc123xyz7.ex.com"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"]["service"] == {"name": "nginx", "port": {"number": 80}}
    assert ANNOTATION_SKIP_AWAIT not in ingress["metadata"].get("annotations", {})
    expected = [{"id": "nginx", "name": "nginx", "host": "abc123xyz7.ex.com", "url": "https://abc123xyz7.ex.com"}]
    assert r.outputs["ingresses"] == expected
    assert r.exports["ingresses"] == expected
    assert r.exports["namespace"] == "sd-abc123xyz7"
    assert r.exports["programVersion"] == PROGRAM_VERSION
    assert [s["name"] for s in r.exports["services"]] == ["nginx"]
    assert r.exports["services"][0]["selector"] == ("shipstack.dev/deployment=abc123xyz7,shipstack.dev/service=nginx")


def test_internal_visibility_creates_no_ingress(monkeypatch: pytest.MonkeyPatch) -> None:
    r = deploy(spec(visibility="internal"), monkeypatch)
    assert r.of(INGRESS) == []
    assert r.names(DEPLOYMENT) == ["nginx"]
    assert r.names(SERVICE) == ["nginx"]
    assert r.exports["ingresses"] == []


def test_without_an_ingress_controller_ingresses_are_not_awaited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingress = deploy(spec(ingress_controller=False), monkeypatch).get(INGRESS, "nginx")
    assert ingress["metadata"]["annotations"][ANNOTATION_SKIP_AWAIT] == "true"


# --- strategy, restart, env ----------------------------------------------------------


def test_recreate_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    strategy = deploy(spec(strategy="recreate"), monkeypatch).get(DEPLOYMENT, "nginx")["spec"]["strategy"]
    # No rollingUpdate block: the API server rejects one next to Recreate.
    assert strategy == {"type": "Recreate"}


def test_rolling_strategy_owns_its_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    strategy = deploy(spec(), monkeypatch).get(DEPLOYMENT, "nginx")["spec"]["strategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }


def test_restart_stamp_annotates_the_pod_template(monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = "2024-03-05T10:30:00+00:00"
    restarted = deploy(spec(restart_stamp=stamp), monkeypatch).pod("nginx")
    assert restarted["metadata"]["annotations"][ANNOTATION_RESTARTED_AT] == stamp
    fresh = deploy(spec(), monkeypatch).pod("nginx")
    assert ANNOTATION_RESTARTED_AT not in fresh["metadata"]["annotations"]


def _checksum(s: DeploymentSpec, monkeypatch: pytest.MonkeyPatch) -> str:
    return deploy(s, monkeypatch).pod("nginx")["metadata"]["annotations"][ANNOTATION_ENV_CHECKSUM]


def test_env_checksum_changes_exactly_when_env_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    base = _checksum(spec(env={"PORT": "80", "DEBUG": "0"}), monkeypatch)
    assert base == env_checksum({"PORT": "80", "DEBUG": "0"})
    assert base == _checksum(spec(env={"DEBUG": "0", "PORT": "80"}), monkeypatch)
    assert base == _checksum(spec(env={"PORT": "80", "DEBUG": "0"}, restart_stamp="2024-01-01T00:00:00Z"), monkeypatch)
    assert base != _checksum(spec(env={"PORT": "81", "DEBUG": "0"}), monkeypatch)
    assert base != _checksum(spec(env={"PORT": "80"}), monkeypatch)
    assert base != _checksum(spec(env={"PORT": "80", "DEBUG": "0", "NEW": ""}), monkeypatch)


def test_env_goes_into_a_secret_marked_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"PASSWORD": "hunter2", "MULTI": "line 1\nline 2 ✓"}
    r = deploy(spec(env=env), monkeypatch)
    assert r.secret_env("nginx") == env
    assert r.get(SECRET, "nginx-env")["type"] == "Opaque"
    # Encrypted in Pulumi state, never a plain input.
    assert is_secret(r.raw(SECRET, "nginx-env")["data"])
    # And nowhere else in plain text.
    others = [x for x in r.created if x.typ != SECRET]
    assert all("hunter2" not in msgspec.json.encode(x.inputs).decode() for x in others)
    assert "hunter2" not in msgspec.json.encode(r.exports).decode()


# --- templates with volumes and several services -------------------------------------


def test_postgres_gets_a_volume_and_recreate(monkeypatch: pytest.MonkeyPatch) -> None:
    r = deploy(spec(template="postgres", env={"POSTGRES_PASSWORD": "pw"}, replicas=3), monkeypatch)
    claim = r.get(PVC, "postgres-data")
    assert claim["metadata"]["namespace"] == "sd-abc123xyz7"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"] == {"storage": "1Gi"}
    d = r.get(DEPLOYMENT, "postgres")
    assert d["spec"]["strategy"] == {"type": "Recreate"}
    assert d["spec"]["replicas"] == 1
    pod = r.pod("postgres")
    assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "postgres-data"}}]
    assert r.container("postgres")["volumeMounts"] == [{"name": "data", "mountPath": "/var/lib/postgresql/data"}]
    assert r.container("postgres")["image"] == "postgres:16"
    assert r.secret_env("postgres")["POSTGRES_PASSWORD"] == "pw"
    # A database is not exposed over HTTP, even for a public deployment.
    assert r.of(INGRESS) == []
    assert r.exports["ingresses"] == []


def test_multi_service_template_gets_one_set_per_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = deploy(spec(template="webapp", env={"POSTGRES_PASSWORD": "pw", "MODE": "x"}), monkeypatch)
    assert r.names(DEPLOYMENT) == ["app", "db"]
    assert r.names(SERVICE) == ["app", "db"]
    assert r.names(SECRET) == ["app-env", "db-env"]
    assert r.names(PVC) == ["db-data"]
    assert r.names(INGRESS) == ["app"]
    assert r.container("app")["image"] == "traefik/whoami:v1.10"
    assert r.container("db")["image"] == "postgres:16"
    assert r.get(DEPLOYMENT, "app")["spec"]["strategy"]["type"] == "RollingUpdate"
    assert r.get(DEPLOYMENT, "db")["spec"]["strategy"]["type"] == "Recreate"
    assert r.secret_env("app")["DATABASE_URL"] == "postgres://postgres:pw@db:5432/postgres"
    assert "MODE" not in r.secret_env("db")
    assert [i["host"] for i in r.exports["ingresses"]] == ["abc123xyz7.ex.com"]
    assert [s["name"] for s in r.exports["services"]] == ["app", "db"]


def test_raw_image_uses_the_spec_image_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    r = deploy(spec(template="image", image="myapp:v1.0.0", container_port=3000), monkeypatch)
    c = r.container("app")
    assert c["image"] == "myapp:v1.0.0"
    assert c["ports"][0]["containerPort"] == 3000
    assert c["readinessProbe"]["tcpSocket"]["port"] == 3000
    assert r.get(SERVICE, "app")["spec"]["ports"][0]["port"] == 3000
    backend = r.get(INGRESS, "app")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"] == {"name": "app", "port": {"number": 3000}}


def test_raw_image_default_port(monkeypatch: pytest.MonkeyPatch) -> None:
    r = deploy(spec(template="image", image="myapp:v1.0.0"), monkeypatch)
    assert r.container("app")["ports"][0]["containerPort"] == 8080


def test_image_override_on_a_template(monkeypatch: pytest.MonkeyPatch) -> None:
    r = deploy(spec(image="nginx:1.26"), monkeypatch)
    assert r.container("nginx")["image"] == "nginx:1.26"


# --- refusing bad specs --------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (spec(template="nope"), "unknown template"),
        (spec(image="Not A Ref"), "image"),
        (spec(template="image"), "image is required"),
        (spec(env={"bad-key": "v"}), "env var name"),
        (spec(program_version=PROGRAM_VERSION + 1), "program version"),
        (spec(name="UPPER"), "name"),
    ],
)
def test_bad_specs_create_nothing(bad: DeploymentSpec, needle: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mocks_seen: list[Run] = []

    def program() -> dict[str, Any]:
        return build(bad, make_provider(KUBECONFIG))

    with pytest.raises(InvalidSpecError, match=needle):
        mocks_seen.append(run(program, monkeypatch))
    assert mocks_seen == []


def test_bad_spec_registers_no_kubernetes_object(monkeypatch: pytest.MonkeyPatch) -> None:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="shipstack", stack="test", monitor=MockMonitor(mocks))

    @pulumi.runtime.test
    def program() -> None:
        build(spec(image="Not A Ref"), make_provider(KUBECONFIG))

    with pytest.raises(InvalidSpecError):
        program()
    assert [x.typ for x in mocks.created if x.typ.startswith("kubernetes:")] == []


# --- reading stack config: the path the service and the CLI share --------------------


@pytest.fixture
def stack_config() -> Iterator[Callable[[dict[str, tuple[str, bool]]], None]]:
    def set_config(values: dict[str, tuple[str, bool]]) -> None:
        pulumi.runtime.set_all_config(
            {k: v for k, (v, _s) in values.items()},
            [k for k, (_v, secret) in values.items() if secret],
        )

    yield set_config
    pulumi.runtime.set_all_config({}, [])


def _with_kubeconfig(s: DeploymentSpec) -> dict[str, tuple[str, bool]]:
    return spec_to_config(s) | {KEY_KUBECONFIG: (KUBECONFIG, True)}


def test_program_from_config_deploys_the_stored_spec(
    stack_config: Callable[[dict[str, tuple[str, bool]]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored = spec(
        template="postgres",
        env={"POSTGRES_PASSWORD": "from-config"},
        visibility="internal",
        restart_stamp="2024-03-05T10:30:00+00:00",
    )
    stack_config(_with_kubeconfig(stored))
    r = run(program_from_config, monkeypatch)
    assert r.names(DEPLOYMENT) == ["postgres"]
    assert r.names(PVC) == ["postgres-data"]
    # The secret config value arrives in plain text and lands, secret, in the Secret.
    assert r.secret_env("postgres")["POSTGRES_PASSWORD"] == "from-config"
    annotations = r.pod("postgres")["metadata"]["annotations"]
    assert annotations[ANNOTATION_RESTARTED_AT] == "2024-03-05T10:30:00+00:00"
    (provider,) = r.of(PROVIDER)
    assert plain(provider.inputs)["kubeconfig"] == KUBECONFIG
    assert is_secret(provider.inputs["kubeconfig"])


def test_program_from_config_cluster_identifier(
    stack_config: Callable[[dict[str, tuple[str, bool]]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack_config(_with_kubeconfig(spec()) | {KEY_CLUSTER_IDENTIFIER: ("prod-eu", False)})
    (provider,) = run(program_from_config, monkeypatch).of(PROVIDER)
    assert plain(provider.inputs)["clusterIdentifier"] == "prod-eu"


def test_program_from_config_needs_a_kubeconfig(
    stack_config: Callable[[dict[str, tuple[str, bool]]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/must/not/be/used")
    stack_config(spec_to_config(spec()))
    with pytest.raises(InvalidSpecError, match="shipstack:kubeconfig"):
        run(program_from_config, monkeypatch)


def test_program_from_config_rejects_corrupt_config(
    stack_config: Callable[[dict[str, tuple[str, bool]]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack_config(_with_kubeconfig(spec()) | {"shipstack:replicas": ("many", False)})
    with pytest.raises(SpecConfigError, match="shipstack:replicas"):
        run(program_from_config, monkeypatch)


def test_cli_entry_point_runs_the_same_program(
    stack_config: Callable[[dict[str, tuple[str, bool]]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the Python language host does for `main: programs/`: run the folder."""
    stack_config(_with_kubeconfig(spec(template="redis")))
    r = run(lambda: runpy.run_path(str(REPO_ROOT / "programs"), run_name="__main__") and None, monkeypatch)
    assert r.names(DEPLOYMENT) == ["redis"]
    assert r.exports["namespace"] == "sd-abc123xyz7"


def test_pulumi_yaml_points_at_the_program() -> None:
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "shipstack"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert project["main"] == "programs/"
    assert (REPO_ROOT / "programs" / "__main__.py").is_file()
    assert deployment.program_from_config is program_from_config
