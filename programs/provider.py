"""The explicit Kubernetes provider every object of a stack is created with."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

# The provider is only replaced when this changes, not when the kubeconfig's server or
# credentials do. A replaced provider replaces every object it manages: all pods and
# every database volume would be deleted and recreated because a certificate rotated.
DEFAULT_CLUSTER_IDENTIFIER = "shipstack"


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
