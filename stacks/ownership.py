"""Pre-flight check before `up`: the deployment's namespace is absent or its own.

Programs force-apply (`pulumi.com/patchForce`) so a re-run after a crash can take over
the objects the dead run left behind. That force must never take over a namespace
someone else made: a namespace `sd-<name>` that exists without shipstack's labels for
THIS deployment stops the update before Pulumi touches anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from programs.labels import LABEL_DEPLOYMENT, LABEL_MANAGED_BY, MANAGED_BY
from programs.spec import namespace_for

READ_TIMEOUT_S = 15


class NamespaceNotOwnedError(RuntimeError):
    """`sd-<name>` exists and is not this deployment's: shipstack will not adopt it."""


class OwnershipCheckError(RuntimeError):
    """The namespace could not be read, so its owner is unknown."""


def foreign_namespace_problem(name: str, labels: Mapping[str, str] | None) -> str | None:
    """Why the existing namespace of deployment `name` (with `labels`) is not its own,
    or None when it carries shipstack's labels for exactly this deployment."""
    labels = labels or {}
    namespace = namespace_for(name)
    if labels.get(LABEL_MANAGED_BY) != MANAGED_BY:
        owner = "not created by shipstack"
    elif labels.get(LABEL_DEPLOYMENT) != name:
        owner = f"labelled for deployment {labels.get(LABEL_DEPLOYMENT)!r}"
    else:
        return None
    return (
        f"namespace {namespace} already exists and is {owner} (shipstack's carries the labels "
        f"{LABEL_MANAGED_BY}={MANAGED_BY} and {LABEL_DEPLOYMENT}={name}), so shipstack will not take it over: "
        f"delete that namespace if it is unused, or deploy under another name"
    )


def check_namespace(kubeconfig: Path | None, name: str) -> None:
    """Raises NamespaceNotOwnedError when `sd-<name>` exists but is not this deployment's.

    A missing namespace is fine (the program creates it). Without a kubeconfig there is
    nothing to check against; the program itself refuses to run without one.
    """
    if kubeconfig is None:
        return
    namespace = namespace_for(name)
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        found = client.CoreV1Api(api).read_namespace(namespace, _request_timeout=READ_TIMEOUT_S)
    except ApiException as exc:
        if exc.status == 404:
            return
        reason: object = f"{exc.status} {exc.reason}"
    except HTTPError as exc:
        reason = exc
    else:
        reason = None
    finally:
        api.close()
    if reason is not None:
        raise OwnershipCheckError(f"cannot read namespace {namespace} to check who owns it: {reason}")
    problem = foreign_namespace_problem(name, found.metadata.labels)
    if problem:
        raise NamespaceNotOwnedError(problem)
