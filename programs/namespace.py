"""The deployment's namespace and what confines everything inside it."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from programs.labels import LABEL_POD_SECURITY, OWNED, labels
from programs.spec import DeploymentSpec, namespace_for


def namespace(spec: DeploymentSpec, provider: k8s.Provider) -> k8s.core.v1.Namespace:
    """`sd-<name>`, labelled as this deployment's (what `stacks.ownership` checks) and
    enforcing the baseline Pod Security level: no privileged pods, host namespaces,
    host paths or added capabilities, whatever a pod spec says."""
    return k8s.core.v1.Namespace(
        "namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=namespace_for(spec.name),
            labels={**labels(spec), LABEL_POD_SECURITY: "baseline"},
            annotations=OWNED,
        ),
        opts=pulumi.ResourceOptions(provider=provider),
    )
