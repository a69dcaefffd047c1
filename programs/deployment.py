"""The Pulumi program: one `DeploymentSpec` in, the deployment's Kubernetes objects out.

The same function runs inline under the Automation API (the service) and from the CLI
(`Pulumi.yaml` -> `programs/__main__.py`), so it reads everything from stack config and
nothing from the environment: `program_from_config()` is the entry point for both.

What a deployment looks like in the cluster (names are fixed, never auto-suffixed, so
logs, metrics and events can find them from the spec alone):

    Namespace      sd-<name>                 (programs.namespace)
      NetworkPolicy  isolation  in: own namespace + ingress controller; out: no private ranges
      ResourceQuota  quota      pods, CPU/memory limits, claims, storage; no NodePort/LB
      LimitRange     limits     the largest container, and a default size
      per service <svc> of the template:
        Secret                 <svc>-env    the service's env (data, base64)   (programs.workload)
        PersistentVolumeClaim  <svc>-data   when the template asks for a volume
        Deployment             <svc>        envFrom the Secret, TCP readiness probe
        Service                <svc>        ClusterIP on the template's port   (programs.exposure)
        Ingress                <svc>        public services of a public deployment

Every resource is created with the explicit provider passed in: the stacks layer
disables default providers, so a missing `provider=` fails loudly instead of deploying
to whatever KUBECONFIG the service process happens to have.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from programs import exposure, workload
from programs.labels import label_selector
from programs.namespace import guards, namespace
from programs.provider import DEFAULT_CLUSTER_IDENTIFIER, make_provider
from programs.scope import AWAIT_TIMEOUT_S, Scope
from programs.spec import (
    CONFIG_NAMESPACE,
    KEY_AWAIT_TIMEOUT,
    KEY_CLUSTER_IDENTIFIER,
    KEY_KUBECONFIG,
    PROGRAM_VERSION,
    SPEC_CONFIG_KEYS,
    DeploymentSpec,
    config_to_spec,
    namespace_for,
)
from programs.templates import (
    ResolvedService,
    Template,
    load_catalog,
    resolve_services,
    validate_for_template,
)
from programs.validate import validate_spec

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
    k8s.networking.v1.NetworkPolicy,
    k8s.core.v1.ResourceQuota,
    k8s.core.v1.LimitRange,
    k8s.meta.v1.ObjectMetaArgs,
)


class InvalidSpecError(ValueError):
    """The stack config describes a spec the program must not deploy."""


def _service_resources(scope: Scope, svc: ResolvedService) -> dict[str, Any]:
    secret = workload.env_secret(scope, svc)
    claim = workload.volume_claim(scope, svc)
    resources: dict[str, Any] = {
        "secret": secret,
        "deployment": workload.deployment(scope, svc, secret, *([claim] if claim else [])),
        "service": exposure.cluster_service(scope, svc),
    }
    if claim is not None:
        resources["claim"] = claim
    routed = exposure.ingress(scope, svc)
    if routed is not None:
        resources["ingress"] = routed
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
    # The template rules resolve the services, which needs a spec that passed its own.
    errors = validate_spec(spec) or validate_for_template(template, spec)
    if errors:
        raise InvalidSpecError("; ".join(errors))
    services = resolve_services(template, spec)

    scope = Scope(spec=spec, provider=provider, namespace=namespace(spec, provider), await_timeout_s=await_timeout_s)
    scope = dataclasses.replace(scope, guards=guards(scope, services))
    for svc in services:
        _service_resources(scope, svc)

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
