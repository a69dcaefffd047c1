"""The names, labels and annotations a deployment's objects carry (pulumi-free).

Logs, metrics, events and the ownership check find a deployment's objects from the
spec alone through these, so they never change once objects carry them.
"""

from __future__ import annotations

from programs.spec import DeploymentSpec

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
# `stacks.ownership` makes sure the namespace is really this deployment's first.
OWNED = {"pulumi.com/patchForce": "true"}


def labels(spec: DeploymentSpec, service: str | None = None) -> dict[str, str]:
    """Labels of every object of the deployment; `service` adds the per-service ones."""
    found = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_DEPLOYMENT: spec.name}
    if service is not None:
        found |= {LABEL_SERVICE: service, LABEL_NAME: service, LABEL_INSTANCE: spec.name}
    return found


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
