"""What kwok simulates in the local cluster: pod stages (Running, Ready, never-ready
images, logs and usage), nodes, the ingress status writer, and the cluster objects
(RBAC for kwok and metrics-server, the aggregation of metrics.k8s.io)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from toolchain.common import BIN, ClusterError

# The usage kwok reports for a container unless its pod carries the
# kwok.x-k8s.io/usage-cpu / usage-memory annotations.
DEFAULT_CPU = "15m"
DEFAULT_MEMORY = "32Mi"

# --- kwok's simulation config ----------------------------------------------


def kwok_config(logs_file: Path) -> str:
    ingress_stage = textwrap.dedent(
        """\
        apiVersion: kwok.x-k8s.io/v1alpha1
        kind: Stage
        metadata:
          name: ingress-load-balancer
        spec:
          resourceRef:
            apiGroup: networking.k8s.io/v1
            kind: Ingress
          selector:
            matchExpressions:
            - key: '.metadata.deletionTimestamp'
              operator: 'DoesNotExist'
            - key: '.status.loadBalancer.ingress'
              operator: 'DoesNotExist'
          next:
            statusTemplate: |
              loadBalancer:
                ingress:
                - ip: 127.0.0.1
        """
    )
    logs = textwrap.dedent(
        f"""\
        apiVersion: kwok.x-k8s.io/v1alpha1
        kind: ClusterLogs
        metadata:
          name: all-pods
        spec:
          selector: {{}}
          logs:
          - logsFile: {logs_file}
            follow: true
        """
    )
    usage = textwrap.dedent(
        f"""\
        apiVersion: kwok.x-k8s.io/v1alpha1
        kind: ClusterResourceUsage
        metadata:
          name: usage-from-annotation
        spec:
          usages:
          - usage:
              cpu:
                expression: |
                  "kwok.x-k8s.io/usage-cpu" in pod.metadata.annotations
                  ? Quantity(pod.metadata.annotations["kwok.x-k8s.io/usage-cpu"])
                  : Quantity("{DEFAULT_CPU}")
              memory:
                expression: |
                  "kwok.x-k8s.io/usage-memory" in pod.metadata.annotations
                  ? Quantity(pod.metadata.annotations["kwok.x-k8s.io/usage-memory"])
                  : Quantity("{DEFAULT_MEMORY}")
        """
    )
    # kwok's own description of kubelet's /metrics/resource endpoint, copied from
    # its module by toolchain/build.sh.
    metric = (BIN / "kwok-metrics-resource.yaml").read_text()
    return "---\n".join([ingress_stage, logs, usage, metric, *pod_stages()])


# A pod whose image reference contains this never becomes Ready: a rollout of
# such an image stalls, as one with a failing readiness probe would.
NEVER_READY_MARK = "never-ready"


def pod_stages() -> list[str]:
    """kwok's default pod stages, with pod-ready skipping never-ready images.

    Giving kwok any pod stage replaces all of its defaults, hence all three.
    """
    stages = []
    for name in ("pod-ready", "pod-complete", "pod-delete"):
        text = (BIN / "kwok-pod-stages" / f"{name}.yaml").read_text()
        if name == "pod-ready":
            anchor = "    matchExpressions:\n"
            if anchor not in text:
                raise ClusterError(f"kwok's {name} stage changed shape; update toolchain/cluster.py")
            extra = (
                f"    - key: '.spec.containers.[].image | contains(\"{NEVER_READY_MARK}\")'\n"
                "      operator: 'NotIn'\n"
                "      values: ['true']\n"
            )
            text = text.replace(anchor, anchor + extra, 1)
        stages.append(text)
    # A kubelet reports a running container Ready again after its node comes back;
    # kwok's pod-ready stage only handles new pods, so a node that was briefly
    # NotReady (the node controller marks its pods not Ready) would strand them.
    stages.append(
        textwrap.dedent(
            f"""\
            apiVersion: kwok.x-k8s.io/v1alpha1
            kind: Stage
            metadata:
              name: pod-ready-again
            spec:
              resourceRef:
                apiGroup: v1
                kind: Pod
              selector:
                matchExpressions:
                - key: '.metadata.deletionTimestamp'
                  operator: 'DoesNotExist'
                - key: '.status.podIP'
                  operator: 'Exists'
                - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
                  operator: 'In'
                  values: ['False']
                - key: '.spec.containers.[].image | contains("{NEVER_READY_MARK}")'
                  operator: 'NotIn'
                  values: ['true']
              delay:
                durationMilliseconds: 2000
              next:
                statusTemplate: |
                  {{{{ $now := Now }}}}
                  conditions:
                  - lastTransitionTime: {{{{ $now | Quote }}}}
                    status: "True"
                    type: Ready
                  - lastTransitionTime: {{{{ $now | Quote }}}}
                    status: "True"
                    type: ContainersReady
            """
        )
    )
    return stages


# A stand-in for an application's output: kwok serves this CRI-format file as
# every container's log, and follows it, so followers see new lines arrive.
LOG_WRITER = r"""
import sys, time, datetime, itertools
path = sys.argv[1]
with open(path, "a", buffering=1) as f:
    for n in itertools.count(1):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        f.write(f"{now} stdout F 127.0.0.1 - - \"GET /healthz HTTP/1.1\" 200 2 request={n}\n")
        time.sleep(2)
"""


# --- objects the cluster starts with ------------------------------------------


def node(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                "kwok.x-k8s.io/node": "fake",
                "node.alpha.kubernetes.io/ttl": "0",
                # metrics-server scrapes kwok's simulated kubelet here.
                "metrics.k8s.io/resource-metrics-path": f"/metrics/nodes/{name}/metrics/resource",
            },
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
        },
    }


def binding(name: str, role_kind: str, role: str, user: str, namespace: str | None = None) -> tuple[str, dict]:
    """A (Cluster)RoleBinding of `role` to `user`, with the path to POST it to."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    path = f"{rbac}/namespaces/{namespace}/rolebindings" if namespace else f"{rbac}/clusterrolebindings"
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return path, {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


def cluster_objects(port: int) -> list[tuple[str, dict]]:
    """RBAC, a Service and an APIService for metrics-server on loopback,
    kwok's own permissions, and the default StorageClass.

    The Service is an ExternalName pointing at localhost: the aggregator
    resolves ExternalName services to that host, and Endpoints may not hold
    loopback addresses.
    """
    ms = "system:metrics-server"
    return [
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": ms},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
            ],
        }),
        binding(ms, "ClusterRole", ms, ms),
        binding("metrics-server:system:auth-delegator", "ClusterRole", "system:auth-delegator", ms),
        binding("metrics-server-auth-reader", "Role", "extension-apiserver-authentication-reader", ms, "kube-system"),
        binding("kwok-controller", "ClusterRole", "cluster-admin", "kwok-controller"),
        ("/apis/storage.k8s.io/v1/storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard",
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "kubernetes.io/host-path", "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }),
        ("/api/v1/namespaces/kube-system/services", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "metrics-server", "namespace": "kube-system"},
            "spec": {"type": "ExternalName", "externalName": "localhost",
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
        }),
        ("/apis/apiregistration.k8s.io/v1/apiservices", {
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                     "versionPriority": 100, "insecureSkipTLSVerify": True,
                     "service": {"namespace": "kube-system", "name": "metrics-server", "port": port}},
        }),
    ]  # fmt: skip


# --- the cluster ------------------------------------------------------------
