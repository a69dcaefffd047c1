"""What every builder of a deployment's objects shares: the spec, the provider, the
namespace the objects live in, and the metadata and options they are created with."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from programs.labels import OWNED
from programs.spec import DeploymentSpec, namespace_for

# How long Pulumi waits for a Deployment/Service/Ingress to become ready before failing
# the update with the pod errors it saw. Below the service's operation timeout (600 s by
# default) so a stuck rollout ends as a readable Pulumi error, not a killed process. The
# awaits run in parallel (no resource waits on another's readiness), so they do not add up.
AWAIT_TIMEOUT_S = 300


@dataclass(frozen=True)
class Scope:
    spec: DeploymentSpec
    provider: k8s.Provider
    # Created first: every other object of the deployment waits for it.
    namespace: pulumi.Resource
    await_timeout_s: int = AWAIT_TIMEOUT_S
    # What pods must not start before (quota, limit range, network policy): a pod
    # admitted before them would run unlimited and unisolated until its next restart.
    guards: tuple[pulumi.Resource, ...] = field(default=())

    @property
    def namespace_name(self) -> str:
        return namespace_for(self.spec.name)

    def opts(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(provider=self.provider, depends_on=[self.namespace, *depends_on])

    def metadata(
        self, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None
    ) -> k8s.meta.v1.ObjectMetaArgs:
        """Metadata of a namespaced object; always force-owned (see `labels.OWNED`)."""
        return k8s.meta.v1.ObjectMetaArgs(
            name=name, namespace=self.namespace_name, labels=labels, annotations={**OWNED, **(annotations or {})}
        )
