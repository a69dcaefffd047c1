"""What confines a deployment, read back from the local cluster after a real `up`
(stacks.engine.apply: ownership pre-flight, real pulumi engine and Kubernetes provider),
and the pre-flight refusing a namespace shipstack did not create."""

from __future__ import annotations

import base64
import secrets

import pytest
from kubernetes import client, config

from programs.spec import DeploymentSpec
from programs.templates import fill_generated_env, load_catalog
from stacks import engine
from stacks.ownership import NamespaceNotOwnedError
from stacks.settings import Settings


def apis(settings: Settings) -> tuple[client.CoreV1Api, client.AppsV1Api, client.NetworkingV1Api]:
    api = config.new_client_from_config(config_file=str(settings.engine.kubeconfig))
    return client.CoreV1Api(api), client.AppsV1Api(api), client.NetworkingV1Api(api)


def secret_env(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, str]:
    data = core.read_namespaced_secret(name, namespace).data or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def forbidden(call, *args) -> str:  # type: ignore[no-untyped-def]
    """The API server's refusal of a write, as its message."""
    with pytest.raises(client.ApiException) as refused:
        call(*args)
    assert refused.value.status == 403, refused.value.body
    return refused.value.body


def test_a_redis_deployment_is_confined_and_password_protected(settings: Settings) -> None:
    name = "it-confined"
    namespace = f"sd-{name}"
    core, apps, networking = apis(settings)
    # What a create killed after its first step leaves: the namespace, labelled as this
    # deployment's. The ownership check lets the re-run take it over.
    core.create_namespace(
        {
            "metadata": {
                "name": namespace,
                "labels": {"app.kubernetes.io/managed-by": "shipstack", "shipstack.dev/deployment": name},
            }
        }
    )
    env = fill_generated_env(load_catalog()["redis"], {}, secrets.SystemRandom())
    spec = DeploymentSpec(name=name, template="redis", base_domain=settings.service.base_domain, env=env)
    config = engine.render_config(settings, spec, None)
    applied = engine.apply(settings, spec, "create redis", config=config, create=True)
    try:
        # NetworkPolicy: every pod isolated; in only from its own namespace (redis is not
        # public, so not even the ingress controller); out not to private ranges.
        policy = networking.read_namespaced_network_policy("isolation", namespace).spec
        assert not policy.pod_selector.match_labels and not policy.pod_selector.match_expressions
        assert policy.policy_types == ["Ingress", "Egress"]
        (ingress_rule,) = policy.ingress
        (peer,) = ingress_rule._from
        assert peer.namespace_selector is None and not peer.pod_selector.match_labels
        internet = policy.egress[2].to
        assert internet[0].ip_block.cidr == "0.0.0.0/0"
        assert {"10.0.0.0/8", "169.254.0.0/16"} <= set(internet[0].ip_block._except)

        # ResourceQuota: in force, counting the redis pod.
        quota = core.read_namespaced_resource_quota("quota", namespace)
        assert quota.status.hard["pods"] == "40" and quota.status.hard["services.nodeports"] == "0"
        assert quota.status.used["pods"] == "1"
        assert quota.status.used["limits.cpu"] == "500m"
        limits = core.read_namespaced_limit_range("limits", namespace).spec.limits[0]
        assert (limits.type, limits.max) == ("Container", {"cpu": "4", "memory": "8Gi"})

        # The pod as admitted: sized, unprivileged, with the command that reads redis's
        # config from stdin, and no password anywhere in its spec.
        (pod,) = core.list_namespaced_pod(namespace, label_selector="shipstack.dev/service=redis").items
        (container,) = pod.spec.containers
        assert container.resources.requests == {"cpu": "50m", "memory": "64Mi"}
        assert container.resources.limits == {"cpu": "500m", "memory": "256Mi"}
        assert container.security_context.privileged is False
        assert container.security_context.allow_privilege_escalation is False
        assert container.security_context.capabilities.drop == ["NET_RAW"]
        assert pod.spec.security_context.seccomp_profile.type == "RuntimeDefault"
        assert container.command[:2] == ["sh", "-c"] and "redis-server -" in container.command[2]
        password = env["REDIS_PASSWORD"]
        assert password not in str(apps.read_namespaced_deployment("redis", namespace).to_dict())
        assert password not in str(pod.to_dict())
        stored = secret_env(core, namespace, "redis-env")
        assert stored["REDIS_PASSWORD"] == password and len(password) == 32
        assert stored["REDIS_CONFIG"] == 'requirepass "' + "".join(f"\\x{b:02x}" for b in password.encode()) + '"'

        # The API server enforces them: a container over the max, a NodePort Service.
        too_big = {
            "metadata": {"name": "too-big"},
            "spec": {"containers": [{"name": "x", "image": "x:1", "resources": {"limits": {"cpu": "8"}}}]},
        }
        assert "maximum cpu usage per Container is 4" in forbidden(core.create_namespaced_pod, namespace, too_big)
        node_port = {"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
        assert "services.nodeports" in forbidden(core.create_namespaced_service, namespace, node_port)
    finally:
        engine.destroy(settings, name, applied.config)


def test_a_foreign_namespace_is_never_adopted(settings: Settings) -> None:
    name = "it-foreign"
    namespace = f"sd-{name}"
    core, apps, _ = apis(settings)
    core.create_namespace({"metadata": {"name": namespace, "labels": {"team": "payments"}}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "theirs"}, "data": {"k": "v"}})
    try:
        spec = DeploymentSpec(name=name, template="nginx", base_domain=settings.service.base_domain)
        with pytest.raises(NamespaceNotOwnedError) as refused:
            engine.apply(settings, spec, "create nginx", config=engine.render_config(settings, spec, None), create=True)
        message = str(refused.value)
        assert f"namespace {namespace} already exists and is not created by shipstack" in message
        assert "delete that namespace if it is unused, or deploy under another name" in message

        # Untouched: its labels and annotations, its objects; nothing of ours inside.
        after = core.read_namespace(namespace).metadata
        assert after.labels == {"team": "payments", "kubernetes.io/metadata.name": namespace}
        assert not after.annotations
        assert core.read_namespaced_config_map("theirs", namespace).data == {"k": "v"}
        assert core.list_namespaced_secret(namespace).items == []
        assert apps.list_namespaced_deployment(namespace).items == []
        assert core.list_namespaced_resource_quota(namespace).items == []
        # Refused before Pulumi ran: no update in the stack's history.
        assert engine.history(settings, name) == []
    finally:
        core.delete_namespace(namespace)
