"""No input of any kind makes the program render a privileged pod, a host path, host
network/PID/IPC, privilege escalation, an added capability, or an object outside the
deployment's own namespace `sd-<name>`.

Property-based: hypothesis draws specs from valid values, hostile strings (YAML and
JSON fragments, `$(VAR)` references, other namespaces' names, control characters) and
wrong types, renders each under Pulumi's mocks, and checks every object the program
asked for. A spec the rules refuse must create nothing at all.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from programs.deployment import InvalidSpecError
from programs.spec import DeploymentSpec
from programs.templates import load_catalog
from programs.tenancy import Compute, Quota, Resources, Tenancy
from tests.unit.programs.pulumi_mocks import NAMESPACE, attempt, plain

CATALOG = load_catalog()
HOSTILE = [
    "", " ", "-", "a" * 300, "../../etc/passwd", "/", "/var/run/docker.sock", "hostPath", "privileged: true",
    '{"securityContext": {"privileged": true}}', "hostNetwork: true\nhostPID: true", "$(HOME)", "${POSTGRES_PASSWORD}",
    "kube-system", "default", "sd-other", "sd-", "\n", "\t", "\x00", "ünïcödé", "--privileged", "nginx; rm -rf /",
    "--cap-add=SYS_ADMIN", "NET_ADMIN", "0", "-1", "true",
]  # fmt: skip
hostile = st.sampled_from(HOSTILE)
# Keys that are pod-spec field names: as env keys or values they must stay data.
FIELD_NAMES = ["privileged", "hostNetwork", "hostPID", "hostIPC", "hostPath", "securityContext", "capabilities"]

names = st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,30}[a-z0-9]", fullmatch=True), hostile, st.text(max_size=45))
images = st.one_of(
    st.none(),
    st.sampled_from(["nginx:1.27", "ghcr.io/acme/app:v1", "localhost:5000/x@sha256:" + "a" * 64, "redis:7-alpine"]),
    hostile,
    st.text(max_size=40),
)
env_keys = st.one_of(
    st.from_regex(r"[A-Z_][A-Z0-9_]{0,15}", fullmatch=True),
    st.sampled_from(["POSTGRES_PASSWORD", "REDIS_PASSWORD", "REDIS_CONFIG", "PGDATA", *FIELD_NAMES]),
    hostile,
)
env = st.dictionaries(env_keys, st.one_of(st.text(max_size=40), hostile), max_size=6)
quantities = st.sampled_from(["50m", "500m", "1", "4", "64Mi", "1Gi", "64Gi", "0", "huge", "-1", "1e3"])
compute = st.builds(Compute, cpu=quantities, memory=quantities)
label_keys = st.one_of(st.sampled_from(["kubernetes.io/metadata.name", "team"]), hostile)
tenancies = st.one_of(
    st.just(Tenancy()),
    st.builds(
        Tenancy,
        ingress_namespace=st.dictionaries(label_keys, st.one_of(st.sampled_from(["ingress-nginx", ""]), hostile),
                                          max_size=2),
        egress_deny=st.lists(st.sampled_from(["10.0.0.0/8", "fc00::/7", "0.0.0.0/0", "nonsense", "::/0"]),
                             max_size=3).map(tuple),
        quota=st.builds(Quota, cpu=quantities, memory=quantities, pods=st.integers(-1, 50),
                        volume_claims=st.integers(-1, 4), storage=quantities),
        container_max=compute,
        resources=st.dictionaries(
            st.sampled_from([*CATALOG, "nope"]),
            st.dictionaries(st.sampled_from(["app", "db", "nginx", "redis", "postgres"]),
                            st.builds(Resources, requests=compute, limits=compute), max_size=2),
            max_size=2,
        ),
    ),
)  # fmt: skip
wild_specs = st.builds(
    DeploymentSpec,
    name=names,
    template=st.sampled_from([*CATALOG, "nope", "../image"]),
    base_domain=st.sampled_from(["ex.com", "apps.example.org", "Bad Domain", "", "kube-system"]),
    image=images,
    container_port=st.one_of(st.none(), st.integers(-5, 70000)),
    env=env,
    visibility=st.sampled_from(["public", "internal", "hostNetwork"]),
    replicas=st.one_of(st.integers(-2, 25), st.sampled_from(["3", True, None])),
    strategy=st.sampled_from(["rolling", "recreate", "privileged"]),
    restart_stamp=st.one_of(st.none(), st.just("2024-03-05T10:30:00+00:00"), hostile),
    ingress_controller=st.booleans(),
    tenancy=tenancies,
)
# Specs the rules accept, carrying hostile data only where any data is allowed (env
# values, env keys that are pod-spec field names): these reach the rendering checks.
valid_specs = st.builds(
    DeploymentSpec,
    name=st.from_regex(r"[a-z][a-z0-9-]{0,30}[a-z0-9]", fullmatch=True),
    template=st.sampled_from(sorted(CATALOG)),
    base_domain=st.just("ex.com"),
    image=st.sampled_from(["nginx:1.27", "ghcr.io/acme/app:v1", "redis:7-alpine"]),
    container_port=st.one_of(st.none(), st.integers(1, 65535)),
    env=st.dictionaries(st.sampled_from(["POSTGRES_PASSWORD", "REDIS_PASSWORD", "REDIS_CONFIG", *FIELD_NAMES]),
                        st.one_of(st.text(max_size=40), hostile).filter(lambda v: "\x00" not in v),
                        max_size=5),
    visibility=st.sampled_from(["public", "internal"]),
    replicas=st.integers(1, 20),
    strategy=st.sampled_from(["rolling", "recreate"]),
    ingress_controller=st.booleans(),
)  # fmt: skip
specs = st.one_of(valid_specs, wild_specs)

HOST_FIELDS = {"hostNetwork", "hostPID", "hostIPC", "hostPath", "hostPort"}
ALLOWED_KINDS = {"Namespace", "Secret", "PersistentVolumeClaim", "Deployment", "Service", "Ingress",
                 "NetworkPolicy", "ResourceQuota", "LimitRange"}  # fmt: skip


def forbidden(value: Any, path: str = "") -> list[str]:
    """Every place in rendered inputs that would give a pod more than a tenant's due."""
    found = []
    if isinstance(value, dict):
        for key, inner in value.items():
            where = f"{path}.{key}"
            if key in HOST_FIELDS and inner not in (None, False):
                found.append(where)
            if key in ("privileged", "allowPrivilegeEscalation") and inner is not False:
                found.append(where)
            if key == "capabilities" and isinstance(inner, dict) and inner.get("add"):
                found.append(where)
            found += forbidden(inner, where)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += forbidden(inner, f"{path}[{index}]")
    return found


def check_rendered(spec: DeploymentSpec, created: list[Any]) -> None:
    namespace = f"sd-{spec.name}"
    objects = [(x.typ, plain(x.inputs)) for x in created if x.typ.startswith("kubernetes:")]
    assert objects, "a valid spec renders at least its namespace"
    for typ, inputs in objects:
        assert typ.rsplit(":", 1)[-1] in ALLOWED_KINDS, typ
        metadata = inputs["metadata"]
        if typ == NAMESPACE:
            assert metadata["name"] == namespace
        else:
            assert metadata["namespace"] == namespace, (typ, metadata)
        if typ.endswith(":Secret"):
            inputs = {k: v for k, v in inputs.items() if k != "data"}  # env names are data, not fields
        assert forbidden(inputs) == [], (typ, forbidden(inputs))
        if typ.endswith(":Deployment"):
            pod = inputs["spec"]["template"]["spec"]
            assert pod["automountServiceAccountToken"] is False
            assert "volumes" not in pod or all(set(v) == {"name", "persistentVolumeClaim"} for v in pod["volumes"])
            for container in pod["containers"]:
                # Explicit, not left to defaults: an image cannot turn them on.
                assert container["securityContext"]["privileged"] is False
                assert container["securityContext"]["allowPrivilegeEscalation"] is False
                assert container["resources"]["limits"] and container["resources"]["requests"]


# No example database: nothing written into the checkout; a failure prints its reproduction blob.
@settings(max_examples=120, deadline=None, database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_no_spec_renders_a_privileged_pod_or_leaves_its_namespace(spec: DeploymentSpec) -> None:
    created, error = attempt(spec)
    event("refused" if error is not None else "rendered")
    if error is not None:
        assert isinstance(error, InvalidSpecError), repr(error)
        assert [x.typ for x in created if x.typ.startswith("kubernetes:")] == []
        return
    check_rendered(spec, created)


def test_the_check_finds_what_it_looks_for() -> None:
    """`forbidden` is not vacuous: a pod spec asking for the host is caught, field by field."""
    context = {"privileged": True, "allowPrivilegeEscalation": None, "capabilities": {"add": ["SYS_ADMIN"]}}
    bad = {"spec": {"volumes": [{"name": "x", "hostPath": {"path": "/"}}], "hostNetwork": True, "hostPID": False,
           "containers": [{"ports": [{"hostPort": 80}], "securityContext": context}]}}  # fmt: skip
    assert forbidden(bad) == [
        ".spec.volumes[0].hostPath",
        ".spec.hostNetwork",
        ".spec.containers[0].ports[0].hostPort",
        ".spec.containers[0].securityContext.privileged",
        ".spec.containers[0].securityContext.allowPrivilegeEscalation",
        ".spec.containers[0].securityContext.capabilities",
    ]


def test_hostile_strings_exercise_rendering() -> None:
    """Most drawn specs must render, or the property would only test refusals."""
    rendered = 0
    for name in ("shop", "a" * 40, "x-1"):
        for template in CATALOG:
            s = DeploymentSpec(name=name, template=template, base_domain="ex.com",
                               image="app:1" if template == "image" else None,
                               env={k: v for k, v in zip(FIELD_NAMES, HOSTILE[5:], strict=False) if v})  # fmt: skip
            created, error = attempt(s)
            assert error is None, error
            check_rendered(s, created)
            rendered += 1
    assert rendered == 3 * len(CATALOG)
