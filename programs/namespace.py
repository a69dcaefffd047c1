"""The deployment's namespace and what confines everything inside it: the Pod Security
level, a NetworkPolicy, a ResourceQuota and a LimitRange."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from programs.labels import LABEL_POD_SECURITY, OWNED, labels
from programs.scope import Scope
from programs.spec import DeploymentSpec, namespace_for
from programs.templates import ResolvedService
from programs.tenancy import CONTAINER_DEFAULT, Compute

NETWORK_POLICY = "isolation"
RESOURCE_QUOTA = "quota"
LIMIT_RANGE = "limits"
# Pods are admitted against a ResourceQuota only once the quota controller has filled
# in its status; until then the API server refuses them ("status unknown for quota").
# So the quota counts as created when its status is there, and pods come after it.
ANNOTATION_WAIT_FOR = "pulumi.com/waitFor"


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


def _everyone_here() -> k8s.networking.v1.NetworkPolicyPeerArgs:
    # An empty pod selector without a namespace selector: every pod of this namespace.
    return k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={}))


def _internet(deny: Sequence[str]) -> list[k8s.networking.v1.NetworkPolicyPeerArgs]:
    """All addresses of both families but the denied ranges (each under its family)."""
    peers = []
    for everything in ("0.0.0.0/0", "::/0"):
        family = ipaddress.ip_network(everything).version
        excluded = [cidr for cidr in deny if ipaddress.ip_network(cidr).version == family]
        peers.append(
            k8s.networking.v1.NetworkPolicyPeerArgs(
                ip_block=k8s.networking.v1.IPBlockArgs(cidr=everything, except_=excluded or None)
            )
        )
    return peers


def network_policy(scope: Scope, services: Sequence[ResolvedService]) -> k8s.networking.v1.NetworkPolicy:
    """Isolates every pod of the namespace.

    In: from pods of this namespace (a web app to its database), and from the ingress
    controller's namespace on the ports of public services only. Nothing else: no other
    tenant, nothing from outside the cluster but through the ingress controller.

    Out: to pods of this namespace, to DNS (port 53 anywhere: the cluster DNS service,
    or a node-local cache), and to the internet: apps call payment APIs, registries and
    managed databases, which is what a PaaS (Heroku, Render, Fly) allows by default. But
    not to the operator's denied ranges, by default every private, shared and link-local
    range, which holds other tenants' pods, the cluster's Services and nodes, and the
    cloud metadata endpoint that hands out node credentials.
    """
    tenancy = scope.spec.tenancy
    ingress_rules = [k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=[_everyone_here()])]
    public_ports = sorted({svc.port for svc in services if svc.host is not None})
    if public_ports:
        ingress_rules.append(
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(tenancy.ingress_namespace))
                    )
                ],
                ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=port, protocol="TCP") for port in public_ports],
            )
        )
    dns = [k8s.networking.v1.NetworkPolicyPortArgs(port=53, protocol=protocol) for protocol in ("UDP", "TCP")]
    return k8s.networking.v1.NetworkPolicy(
        NETWORK_POLICY,
        metadata=scope.metadata(NETWORK_POLICY, labels(scope.spec)),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={}),
            policy_types=["Ingress", "Egress"],
            ingress=ingress_rules,
            egress=[
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=[_everyone_here()]),
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(ports=dns),
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=_internet(tenancy.egress_deny)),
            ],
        ),
        opts=scope.opts(),
    )


def resource_quota(scope: Scope) -> k8s.core.v1.ResourceQuota:
    """The most the namespace may hold: pods, their CPU and memory limits, volume claims
    and storage; never a NodePort or LoadBalancer Service (a tenant port on every node,
    or a cloud load balancer billed to the operator)."""
    quota = scope.spec.tenancy.quota
    return k8s.core.v1.ResourceQuota(
        RESOURCE_QUOTA,
        metadata=scope.metadata(RESOURCE_QUOTA, labels(scope.spec), {ANNOTATION_WAIT_FOR: "jsonpath={.status.hard}"}),
        spec=k8s.core.v1.ResourceQuotaSpecArgs(
            hard={
                "pods": str(quota.pods),
                "limits.cpu": quota.cpu,
                "limits.memory": quota.memory,
                "persistentvolumeclaims": str(quota.volume_claims),
                "requests.storage": quota.storage,
                "services.nodeports": "0",
                "services.loadbalancers": "0",
            }
        ),
        opts=scope.opts(),
    )


def _compute(compute: Compute) -> dict[str, str]:
    return {"cpu": compute.cpu, "memory": compute.memory}


def limit_range(scope: Scope) -> k8s.core.v1.LimitRange:
    """The largest container the operator allows, and the size of one that names none."""
    return k8s.core.v1.LimitRange(
        LIMIT_RANGE,
        metadata=scope.metadata(LIMIT_RANGE, labels(scope.spec)),
        spec=k8s.core.v1.LimitRangeSpecArgs(
            limits=[
                k8s.core.v1.LimitRangeItemArgs(
                    type="Container",
                    max=_compute(scope.spec.tenancy.container_max),
                    default=_compute(CONTAINER_DEFAULT.limits),
                    default_request=_compute(CONTAINER_DEFAULT.requests),
                )
            ]
        ),
        opts=scope.opts(),
    )


def guards(scope: Scope, services: Sequence[ResolvedService]) -> tuple[pulumi.Resource, ...]:
    """Everything that must exist before the first pod starts."""
    return (network_policy(scope, services), resource_quota(scope), limit_range(scope))
