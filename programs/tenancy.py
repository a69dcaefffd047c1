"""The operator's rules for every tenant namespace: who may connect to its pods, where
they may connect, and how much CPU, memory, pods and storage it may use.

They travel with the spec (`shipstack:tenancy`, like the base domain) so a revision's
config says exactly what the program rendered; the service sets them from its own
settings at create and rollback (`stacks.changes.with_placement`). Pure, no pulumi.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

import msgspec

from programs.quantities import byte_count, cpu_millis


class Compute(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An amount of CPU (`250m`, `1.5`) and memory (`256Mi`)."""

    cpu: str
    memory: str


class Resources(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A container's requests (what the scheduler reserves) and limits (its ceiling)."""

    requests: Compute
    limits: Compute


class Quota(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ResourceQuota of each deployment namespace.

    CPU and memory cap the pods' *limits* (requests never exceed limits). The defaults
    fit the largest spec the rules allow on the default templates (20 replicas of a
    raw image plus a rolling update's surge), so no valid spec is refused by default;
    an operator lowers them to sell smaller plans.
    """

    cpu: str = "16"
    memory: str = "16Gi"
    pods: int = 40
    volume_claims: int = 4
    storage: str = "20Gi"


# Where a pod may never connect: private, shared-address, link-local (cloud metadata
# at 169.254.169.254 hands out node credentials) and loopback ranges, so a tenant
# reaches neither the cluster's pods, Services and nodes nor the provider's network.
PRIVATE_NETWORKS: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
)
# Every namespace carries this label with its own name (Kubernetes >= 1.22).
DEFAULT_INGRESS_NAMESPACE: dict[str, str] = {"kubernetes.io/metadata.name": "ingress-nginx"}
# What the LimitRange gives a container that names no resources (shipstack's containers
# always do): small, and at most any sensible `container_max`.
CONTAINER_DEFAULT = Resources(requests=Compute(cpu="50m", memory="64Mi"), limits=Compute(cpu="500m", memory="256Mi"))


class Tenancy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Operator settings that confine one deployment namespace."""

    # Labels of the namespace the ingress controller runs in: its pods may reach the
    # public services' pods. Must not be empty: an empty selector means every namespace.
    ingress_namespace: dict[str, str] = msgspec.field(default_factory=lambda: dict(DEFAULT_INGRESS_NAMESPACE))
    # CIDRs pods may not send to; everything else (the internet, DNS) stays open.
    egress_deny: tuple[str, ...] = PRIVATE_NETWORKS
    quota: Quota = msgspec.field(default_factory=Quota)
    # The LimitRange's max per container.
    container_max: Compute = msgspec.field(default_factory=lambda: Compute(cpu="4", memory="8Gi"))
    # The operator's sizes for template services: template -> service -> resources,
    # replacing the `resources:` of that service's template file.
    resources: dict[str, dict[str, Resources]] = msgspec.field(default_factory=dict)

    def for_template(self, template: str) -> Tenancy:
        """Only the resource overrides of `template`: a spec stores what applies to it."""
        kept = {template: self.resources[template]} if template in self.resources else {}
        return msgspec.structs.replace(self, resources=kept)


# --- parsing operator input ----------------------------------------------------------

_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_KEY = re.compile(rf"({_LABEL_PREFIX}/)?{_LABEL_NAME}")
_LABEL_VALUE = re.compile(rf"({_LABEL_NAME})?")


def parse_label_selector(text: str) -> dict[str, str]:
    """`key=value[,key=value...]` -> labels; raises ValueError naming the bad part."""
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"label selector part {part!r} is not key=value")
        labels[key.strip()] = value.strip()
    errors = validate_labels(labels)
    if errors:
        raise ValueError("; ".join(errors))
    return labels


# --- rules -----------------------------------------------------------------------------


def validate_labels(labels: Mapping[str, str]) -> list[str]:
    """A non-empty set of valid Kubernetes label keys and values."""
    if not labels:
        return ["the ingress namespace selector must name at least one label (empty selects every namespace)"]
    errors = []
    for key, value in labels.items():
        if len(key) > 253 or not _LABEL_KEY.fullmatch(key):
            errors.append(f"{key!r} is not a Kubernetes label key")
        if not _LABEL_VALUE.fullmatch(value):
            errors.append(f"{value!r} (label {key!r}) is not a Kubernetes label value")
    return errors


def validate_compute(what: str, compute: Compute) -> list[str]:
    errors = []
    if cpu_millis(compute.cpu) is None:
        errors.append(f"{what} cpu {compute.cpu!r} must look like 250m or 1.5")
    if byte_count(compute.memory) is None:
        errors.append(f"{what} memory {compute.memory!r} must look like 256Mi or 1Gi")
    return errors


def validate_resources(what: str, resources: Resources) -> list[str]:
    """Valid quantities, and requests within limits (the API server's own rule)."""
    errors = validate_compute(f"{what} requests", resources.requests) + validate_compute(
        f"{what} limits", resources.limits
    )
    if not errors and not fits(resources.requests, resources.limits):
        errors.append(f"{what} requests must not exceed its limits")
    return errors


def fits(inner: Compute, outer: Compute) -> bool:
    """Whether `inner` is at most `outer` in both CPU and memory (both valid)."""
    return (cpu_millis(inner.cpu) or 0) <= (cpu_millis(outer.cpu) or 0) and (byte_count(inner.memory) or 0) <= (
        byte_count(outer.memory) or 0
    )


def validate_tenancy(tenancy: Tenancy) -> list[str]:
    """Every rule an operator setting must pass for the program to render valid objects."""
    errors = validate_labels(tenancy.ingress_namespace)
    for cidr in tenancy.egress_deny:
        try:
            # /0 would deny the whole internet: that is a different product, not a setting.
            if ipaddress.ip_network(cidr, strict=True).prefixlen == 0:
                errors.append(f"egress deny {cidr!r} must not be a whole address family")
        except ValueError:
            errors.append(f"egress deny {cidr!r} is not a network in CIDR form")
    quota = tenancy.quota
    errors += validate_compute("quota", Compute(cpu=quota.cpu, memory=quota.memory))
    if byte_count(quota.storage) is None:
        errors.append(f"quota storage {quota.storage!r} must look like 20Gi")
    if quota.pods < 1 or quota.volume_claims < 0:
        errors.append("quota pods must be at least 1 and volume claims at least 0")
    max_errors = validate_compute("container max", tenancy.container_max)
    errors += max_errors
    if not max_errors and not fits(CONTAINER_DEFAULT.limits, tenancy.container_max):
        errors.append(
            f"container max must be at least the default limits ({CONTAINER_DEFAULT.limits.cpu} CPU, "
            f"{CONTAINER_DEFAULT.limits.memory})"
        )
    for template, services in tenancy.resources.items():
        for service, resources in services.items():
            errors += validate_resources(f"resources of {template}/{service}", resources)
    return errors
