"""The Pulumi program: one `DeploymentSpec` in, the deployment's Kubernetes objects out.

The same function runs inline under the Automation API (the service) and from the CLI
(`Pulumi.yaml` -> `programs/__main__.py`), so it reads everything from stack config and
nothing from the environment: `program_from_config()` is the entry point for both.

What a deployment looks like in the cluster (names are fixed, never auto-suffixed, so
logs, metrics and events can find them from the spec alone):

    Namespace  sd-<name>
      per service <svc> of the template:
        Secret                 <svc>-env    the service's env (data, base64)
        PersistentVolumeClaim  <svc>-data   when the template asks for a volume
        Deployment             <svc>        envFrom the Secret, TCP readiness probe
        Service                <svc>        ClusterIP on the template's port
        Ingress                <svc>        public services of a public deployment

Every resource is created with the explicit provider passed in: the stacks layer
disables default providers, so a missing `provider=` fails loudly instead of deploying
to whatever KUBECONFIG the service process happens to have.
"""

from __future__ import annotations

import base64
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from programs.spec import (
    CONFIG_NAMESPACE,
    KEY_AWAIT_TIMEOUT,
    KEY_CLUSTER_IDENTIFIER,
    KEY_KUBECONFIG,
    PROGRAM_VERSION,
    SPEC_CONFIG_KEYS,
    DeploymentSpec,
    config_to_spec,
    env_checksum,
    namespace_for,
    validate_spec,
)
from programs.templates import (
    ResolvedService,
    Template,
    load_catalog,
    resolve_services,
    validate_for_template,
)

# pulumi_kubernetes loads its submodules lazily, on first attribute access, and
# that first load is not thread-safe: two stacks starting at once in the
# service's worker threads saw "module 'pulumi_kubernetes.core.v1' has no
# attribute 'Namespace'". Load every module the program uses now, at import.
_LOADED = (
    k8s.Provider,
    k8s.core.v1.Namespace,
    k8s.core.v1.Secret,
    k8s.core.v1.Service,
    k8s.core.v1.PersistentVolumeClaim,
    k8s.apps.v1.Deployment,
    k8s.networking.v1.Ingress,
    k8s.meta.v1.ObjectMetaArgs,
)

MANAGED_BY = "shipstack"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_DEPLOYMENT = "shipstack.dev/deployment"
LABEL_SERVICE = "shipstack.dev/service"
LABEL_POD_SECURITY = "pod-security.kubernetes.io/enforce"
ANNOTATION_ENV_CHECKSUM = "shipstack.dev/env-checksum"
ANNOTATION_RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
ANNOTATION_SKIP_AWAIT = "pulumi.com/skipAwait"
ANNOTATION_TIMEOUT = "pulumi.com/timeoutSeconds"
# shipstack is the only manager of a deployment's objects (its own namespace). An
# `up` killed mid-create leaves objects the state does not know; the re-run applies
# them again under a new field manager, and without force that is a conflict.
OWNED = {"pulumi.com/patchForce": "true"}

# How long Pulumi waits for a Deployment/Service/Ingress to become ready before failing
# the update with the pod errors it saw. Below the service's operation timeout (600 s by
# default) so a stuck rollout ends as a readable Pulumi error, not a killed process. The
# awaits run in parallel (no resource waits on another's readiness), so they do not add up.
AWAIT_TIMEOUT_S = 300
# The provider is only replaced when this changes, not when the kubeconfig's server or
# credentials do. A replaced provider replaces every object it manages: all pods and
# every database volume would be deleted and recreated because a certificate rotated.
DEFAULT_CLUSTER_IDENTIFIER = "shipstack"


class InvalidSpecError(ValueError):
    """The stack config describes a spec the program must not deploy."""


def make_provider(kubeconfig: str, cluster_identifier: str = DEFAULT_CLUSTER_IDENTIFIER) -> k8s.Provider:
    """The explicit Kubernetes provider every resource of the stack uses.

    Every setting the provider would otherwise read from the process environment
    (KUBECONFIG, PULUMI_K8S_*) is set here, so the service's own environment never
    changes what a stack does:
    - kubeconfig: contents from stack config, kept secret in state;
    - server-side apply ON: fields we stop sending are removed (a cleared restart stamp,
      a removed env key, the rollingUpdate block when switching to Recreate);
    - mutable Secrets: env changes update `<svc>-env` in place; with immutable Secrets
      and a fixed name Pulumi would delete and recreate it, and pods starting in between
      would find no Secret;
    - delete_unreachable / skip_update_unreachable OFF: an unreachable cluster is an
      error, never a silent "deleted" that drops resources from state.
    """
    return k8s.Provider(
        "k8s",
        kubeconfig=pulumi.Output.secret(kubeconfig),
        cluster_identifier=cluster_identifier,
        enable_server_side_apply=True,
        enable_secret_mutable=True,
        enable_config_map_mutable=False,
        delete_unreachable=False,
        skip_update_unreachable=False,
        suppress_deprecation_warnings=False,
    )


def _labels(spec: DeploymentSpec, service: str | None = None) -> dict[str, str]:
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_DEPLOYMENT: spec.name}
    if service is not None:
        labels |= {LABEL_SERVICE: service, LABEL_NAME: service, LABEL_INSTANCE: spec.name}
    return labels


def selector_labels(spec: DeploymentSpec, service: str) -> dict[str, str]:
    """The pod selector of a service. Part of an immutable Deployment field: never
    change it, or every existing deployment needs a replacement."""
    return {LABEL_DEPLOYMENT: spec.name, LABEL_SERVICE: service}


def label_selector(spec: DeploymentSpec, service: str) -> str:
    """`selector_labels` as a Kubernetes label selector string (for logs and metrics)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(spec, service).items())


def secret_name(service: str) -> str:
    return f"{service}-env"


def volume_claim_name(service: str) -> str:
    return f"{service}-data"


def pod_annotations(spec: DeploymentSpec, svc: ResolvedService) -> dict[str, str]:
    """Annotations on the pod template: any change here rolls the pods.

    The env checksum makes an env change (which only touches the Secret) roll pods; the
    restart stamp is how "restart" is expressed as config, so it shows in history and
    survives later updates."""
    annotations = {ANNOTATION_ENV_CHECKSUM: env_checksum(svc.env)}
    if spec.restart_stamp:
        annotations[ANNOTATION_RESTARTED_AT] = spec.restart_stamp
    return annotations


def _strategy(svc: ResolvedService) -> k8s.apps.v1.DeploymentStrategyArgs:
    if svc.strategy == "Recreate":
        return k8s.apps.v1.DeploymentStrategyArgs(type="Recreate")
    # Explicit (default) values so this field manager OWNS rollingUpdate: switching to
    # Recreate later then removes it. Left to API-server defaulting it would stay, and
    # the API server rejects Recreate with a rollingUpdate block (pulumi-kubernetes#2843).
    return k8s.apps.v1.DeploymentStrategyArgs(
        type="RollingUpdate",
        rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge="25%", max_unavailable="25%"),
    )


def _encode(env: dict[str, str]) -> dict[str, str]:
    # `data`, not `stringData`: under server-side apply a key removed from stringData
    # stays in the Secret (kubernetes#108008), so a removed env var would live on.
    return {key: base64.b64encode(value.encode()).decode() for key, value in env.items()}


def _service_resources(
    spec: DeploymentSpec,
    svc: ResolvedService,
    namespace: k8s.core.v1.Namespace,
    provider: k8s.Provider,
    await_timeout_s: int = AWAIT_TIMEOUT_S,
) -> dict[str, Any]:
    ns_name = namespace_for(spec.name)
    labels = _labels(spec, svc.name)
    await_annotations = {ANNOTATION_TIMEOUT: str(await_timeout_s), **OWNED}

    def opts(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(provider=provider, depends_on=[namespace, *depends_on])

    secret = k8s.core.v1.Secret(
        secret_name(svc.name),
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=secret_name(svc.name), namespace=ns_name, labels=labels, annotations=OWNED
        ),
        type="Opaque",
        data=_encode(svc.env),
        opts=opts(),
    )

    volumes: list[k8s.core.v1.VolumeArgs] = []
    mounts: list[k8s.core.v1.VolumeMountArgs] = []
    claim = None
    if svc.volume is not None:
        claim = k8s.core.v1.PersistentVolumeClaim(
            volume_claim_name(svc.name),
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=volume_claim_name(svc.name), namespace=ns_name, labels=labels, annotations=OWNED
            ),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": svc.volume.size}),
            ),
            opts=opts(),
        )
        volumes.append(
            k8s.core.v1.VolumeArgs(
                name="data",
                persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                    claim_name=volume_claim_name(svc.name)
                ),
            )
        )
        mounts.append(k8s.core.v1.VolumeMountArgs(name="data", mount_path=svc.volume.mount_path))

    container = k8s.core.v1.ContainerArgs(
        name=svc.name,
        image=svc.image,
        ports=[k8s.core.v1.ContainerPortArgs(container_port=svc.port, protocol="TCP")],
        env_from=[
            k8s.core.v1.EnvFromSourceArgs(secret_ref=k8s.core.v1.SecretEnvSourceArgs(name=secret_name(svc.name)))
        ],
        readiness_probe=k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=svc.port),
            initial_delay_seconds=1,
            period_seconds=5,
            failure_threshold=3,
        ),
        volume_mounts=mounts or None,
    )
    deployment = k8s.apps.v1.Deployment(
        svc.name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=svc.name, namespace=ns_name, labels=labels, annotations=await_annotations
        ),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=svc.replicas,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(spec, svc.name)),
            strategy=_strategy(svc),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations=pod_annotations(spec, svc)),
                spec=k8s.core.v1.PodSpecArgs(
                    containers=[container],
                    volumes=volumes or None,
                    # Tenant pods never talk to the Kubernetes API...
                    automount_service_account_token=False,
                    # ...and get no FOO_SERVICE_HOST/FOO_PORT variables: a Service named
                    # `postgres` or `redis` would otherwise inject POSTGRES_PORT=tcp://...
                    # and REDIS_PORT=tcp://..., which those images misread.
                    enable_service_links=False,
                ),
            ),
        ),
        opts=opts(secret, *([claim] if claim else [])),
    )
    service = k8s.core.v1.Service(
        svc.name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=svc.name, namespace=ns_name, labels=labels, annotations=await_annotations
        ),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=selector_labels(spec, svc.name),
            ports=[k8s.core.v1.ServicePortArgs(port=svc.port, target_port=svc.port, protocol="TCP")],
        ),
        opts=opts(),
    )
    resources: dict[str, Any] = {"secret": secret, "deployment": deployment, "service": service}
    if claim is not None:
        resources["claim"] = claim
    if svc.host is not None:
        ingress_annotations = dict(await_annotations)
        if not spec.ingress_controller:
            # Nothing would ever write the Ingress status: do not wait for it.
            ingress_annotations[ANNOTATION_SKIP_AWAIT] = "true"
        resources["ingress"] = k8s.networking.v1.Ingress(
            svc.name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=svc.name, namespace=ns_name, labels=labels, annotations=ingress_annotations
            ),
            spec=k8s.networking.v1.IngressSpecArgs(
                rules=[
                    k8s.networking.v1.IngressRuleArgs(
                        host=svc.host,
                        http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                            paths=[
                                k8s.networking.v1.HTTPIngressPathArgs(
                                    path="/",
                                    path_type="Prefix",
                                    backend=k8s.networking.v1.IngressBackendArgs(
                                        service=k8s.networking.v1.IngressServiceBackendArgs(
                                            name=svc.name,
                                            port=k8s.networking.v1.ServiceBackendPortArgs(number=svc.port),
                                        )
                                    ),
                                )
                            ]
                        ),
                    )
                ]
            ),
            opts=opts(),
        )
    return resources


def outputs_for(spec: DeploymentSpec, services: list[ResolvedService]) -> dict[str, Any]:
    """The stack outputs: what the API shows (ingresses) and what logs/metrics/events
    need to find the objects (namespace, per-service selector). Plain values computed
    from the spec, so they are known in previews too."""
    return {
        "namespace": namespace_for(spec.name),
        "ingresses": [
            {"id": s.name, "name": s.name, "host": s.host, "url": f"https://{s.host}"}
            for s in services
            if s.host is not None
        ],
        "services": [
            {
                "name": s.name,
                "image": s.image,
                "port": s.port,
                "replicas": s.replicas,
                "host": s.host,
                "selector": label_selector(spec, s.name),
            }
            for s in services
        ],
        "programVersion": PROGRAM_VERSION,
    }


def build(
    spec: DeploymentSpec,
    provider: k8s.Provider,
    catalog: dict[str, Template] | None = None,
    await_timeout_s: int = AWAIT_TIMEOUT_S,
) -> dict[str, Any]:
    """Create the deployment's resources with `provider` and export its outputs.

    Returns the exported values. Raises InvalidSpecError, before creating anything, when
    the spec breaks a rule (e.g. hand-edited config): bad input never reaches the cluster.
    """
    template = (catalog if catalog is not None else load_catalog()).get(spec.template)
    if template is None:
        raise InvalidSpecError(f"unknown template {spec.template!r}")
    errors = validate_spec(spec) + validate_for_template(template, spec)
    if errors:
        raise InvalidSpecError("; ".join(errors))
    services = resolve_services(template, spec)

    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=namespace_for(spec.name),
            labels={**_labels(spec), LABEL_POD_SECURITY: "baseline"},
            annotations=OWNED,
        ),
        opts=pulumi.ResourceOptions(provider=provider),
    )
    for svc in services:
        _service_resources(spec, svc, namespace, provider, await_timeout_s)

    outputs = outputs_for(spec, services)
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


def read_config() -> tuple[DeploymentSpec, str, str]:
    """(spec, kubeconfig, cluster identifier) from the stack's `shipstack:*` config.

    `Config.get` returns secret values in plain text: the engine hands the program
    decrypted config and only tracks which keys are secret (see pulumi/config.py and
    pulumi/runtime/config.py in the SDK). That is what we want here, because the spec is
    needed as plain Python values to decide WHICH resources exist; secrecy is restored
    where the values land (Secret `data` and the provider's kubeconfig are secret
    outputs, so state stays encrypted).
    """
    config = pulumi.Config(CONFIG_NAMESPACE)
    prefix = f"{CONFIG_NAMESPACE}:"

    def short(key: str) -> str:
        return key.removeprefix(prefix)

    raw = {key: value for key in SPEC_CONFIG_KEYS if (value := config.get(short(key))) is not None}
    spec = config_to_spec(raw)
    kubeconfig = config.get(short(KEY_KUBECONFIG))
    if not kubeconfig:
        # Never fall back to the process's KUBECONFIG: that could be another cluster.
        raise InvalidSpecError(f"config key {KEY_KUBECONFIG} is missing")
    cluster_identifier = config.get(short(KEY_CLUSTER_IDENTIFIER)) or DEFAULT_CLUSTER_IDENTIFIER
    return spec, kubeconfig, cluster_identifier


def program_from_config() -> dict[str, Any]:
    """The Pulumi program: inline for the service, via `__main__.py` for the CLI."""
    spec, kubeconfig, cluster_identifier = read_config()
    # Where the service runs decides how long a rollout may take, not the spec:
    # like the kubeconfig, it is written into every update's config.
    raw_timeout = pulumi.Config(CONFIG_NAMESPACE).get(KEY_AWAIT_TIMEOUT.removeprefix(f"{CONFIG_NAMESPACE}:"))
    timeout = int(raw_timeout) if raw_timeout and raw_timeout.isdigit() else AWAIT_TIMEOUT_S
    return build(spec, make_provider(kubeconfig, cluster_identifier), await_timeout_s=timeout)
