"""What runs: per service, its env Secret, its volume claim and its Deployment."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

import msgspec
import pulumi
import pulumi_kubernetes as k8s

from programs.labels import (
    ANNOTATION_ENV_CHECKSUM,
    ANNOTATION_RESTARTED_AT,
    ANNOTATION_TIMEOUT,
    labels,
    secret_name,
    selector_labels,
    volume_claim_name,
)
from programs.scope import Scope
from programs.spec import DeploymentSpec
from programs.templates import ResolvedService


def env_checksum(env: Mapping[str, str]) -> str:
    """sha256 of the env as sorted JSON: put on the pod template so a changed Secret
    rolls the pods (Kubernetes does not restart pods when a Secret they read changes)."""
    return hashlib.sha256(msgspec.json.encode(dict(env), order="sorted")).hexdigest()


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


def env_secret(scope: Scope, svc: ResolvedService) -> k8s.core.v1.Secret:
    """`<svc>-env`: the service's whole env, which its container reads with envFrom."""
    return k8s.core.v1.Secret(
        secret_name(svc.name),
        metadata=scope.metadata(secret_name(svc.name), labels(scope.spec, svc.name)),
        type="Opaque",
        data=_encode(svc.env),
        opts=scope.opts(),
    )


def volume_claim(scope: Scope, svc: ResolvedService) -> k8s.core.v1.PersistentVolumeClaim | None:
    """`<svc>-data`, a ReadWriteOnce claim, when the template gives the service a volume."""
    if svc.volume is None:
        return None
    return k8s.core.v1.PersistentVolumeClaim(
        volume_claim_name(svc.name),
        metadata=scope.metadata(volume_claim_name(svc.name), labels(scope.spec, svc.name)),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"],
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": svc.volume.size}),
        ),
        opts=scope.opts(),
    )


def security_context() -> k8s.core.v1.SecurityContextArgs:
    """The same for every container, whatever the spec: never privileged, no privilege
    gained through setuid binaries, no raw sockets (no ARP or DNS spoofing of the
    neighbours on the node's network).

    Images that start as root and switch user themselves (postgres, redis, nginx) keep
    working: dropping privileges needs neither escalation nor NET_RAW. No capability is
    ever added, and the namespace's baseline Pod Security level rejects a pod that
    would add one, so none could sneak in another way.
    """
    return k8s.core.v1.SecurityContextArgs(
        privileged=False,
        allow_privilege_escalation=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["NET_RAW"]),
    )


def container(svc: ResolvedService) -> k8s.core.v1.ContainerArgs:
    """The service's one container: its image and port, env from `<svc>-env`, sized."""
    mounts = None
    if svc.volume is not None:
        mounts = [k8s.core.v1.VolumeMountArgs(name="data", mount_path=svc.volume.mount_path)]
    return k8s.core.v1.ContainerArgs(
        name=svc.name,
        image=svc.image,
        command=list(svc.command) or None,
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": svc.resources.requests.cpu, "memory": svc.resources.requests.memory},
            limits={"cpu": svc.resources.limits.cpu, "memory": svc.resources.limits.memory},
        ),
        security_context=security_context(),
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
        volume_mounts=mounts,
    )


def pod_spec(svc: ResolvedService) -> k8s.core.v1.PodSpecArgs:
    volumes = None
    if svc.volume is not None:
        volumes = [
            k8s.core.v1.VolumeArgs(
                name="data",
                persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                    claim_name=volume_claim_name(svc.name)
                ),
            )
        ]
    return k8s.core.v1.PodSpecArgs(
        containers=[container(svc)],
        volumes=volumes,
        # Tenant pods never talk to the Kubernetes API...
        automount_service_account_token=False,
        # ...and get no FOO_SERVICE_HOST/FOO_PORT variables: a Service named
        # `postgres` or `redis` would otherwise inject POSTGRES_PORT=tcp://...
        # and REDIS_PORT=tcp://..., which those images misread.
        enable_service_links=False,
        # The container runtime's default syscall filter (unconfined otherwise).
        security_context=k8s.core.v1.PodSecurityContextArgs(
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")
        ),
    )


def deployment(scope: Scope, svc: ResolvedService, *depends_on: pulumi.Resource) -> k8s.apps.v1.Deployment:
    """The service's Deployment; Pulumi waits (up to the await timeout) until it is Available."""
    spec = scope.spec
    service_labels = labels(spec, svc.name)
    return k8s.apps.v1.Deployment(
        svc.name,
        metadata=scope.metadata(svc.name, service_labels, {ANNOTATION_TIMEOUT: str(scope.await_timeout_s)}),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=svc.replicas,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(spec, svc.name)),
            strategy=_strategy(svc),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=service_labels, annotations=pod_annotations(spec, svc)),
                spec=pod_spec(svc),
            ),
        ),
        opts=scope.opts(*scope.guards, *depends_on),
    )
