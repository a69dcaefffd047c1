"""How a service is reached: its ClusterIP Service, and an Ingress when it is public."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from programs.labels import ANNOTATION_SKIP_AWAIT, ANNOTATION_TIMEOUT, labels, selector_labels
from programs.scope import Scope
from programs.templates import ResolvedService


def cluster_service(scope: Scope, svc: ResolvedService) -> k8s.core.v1.Service:
    """`<svc>`: a ClusterIP Service on the service's port (never NodePort or LoadBalancer)."""
    return k8s.core.v1.Service(
        svc.name,
        metadata=scope.metadata(
            svc.name, labels(scope.spec, svc.name), {ANNOTATION_TIMEOUT: str(scope.await_timeout_s)}
        ),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=selector_labels(scope.spec, svc.name),
            ports=[k8s.core.v1.ServicePortArgs(port=svc.port, target_port=svc.port, protocol="TCP")],
        ),
        opts=scope.opts(),
    )


def ingress(scope: Scope, svc: ResolvedService) -> k8s.networking.v1.Ingress | None:
    """`<svc>` routing `https://<host>/` to the Service, for public services of a public
    deployment (those that have a host)."""
    if svc.host is None:
        return None
    annotations = {ANNOTATION_TIMEOUT: str(scope.await_timeout_s)}
    if not scope.spec.ingress_controller:
        # Nothing would ever write the Ingress status: do not wait for it.
        annotations[ANNOTATION_SKIP_AWAIT] = "true"
    backend = k8s.networking.v1.IngressBackendArgs(
        service=k8s.networking.v1.IngressServiceBackendArgs(
            name=svc.name, port=k8s.networking.v1.ServiceBackendPortArgs(number=svc.port)
        )
    )
    return k8s.networking.v1.Ingress(
        svc.name,
        metadata=scope.metadata(svc.name, labels(scope.spec, svc.name), annotations),
        spec=k8s.networking.v1.IngressSpecArgs(
            rules=[
                k8s.networking.v1.IngressRuleArgs(
                    host=svc.host,
                    http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                        paths=[k8s.networking.v1.HTTPIngressPathArgs(path="/", path_type="Prefix", backend=backend)]
                    ),
                )
            ]
        ),
        opts=scope.opts(),
    )
