"""Revision messages: a one-line description of a spec change, naming keys, never values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from programs.spec import AutoUpdate, DeploymentSpec, DriftSettings

_MAX_LISTED_KEYS = 10


def _key_list(keys: Iterable[str]) -> str:
    ordered = sorted(keys)
    shown = ", ".join(ordered[:_MAX_LISTED_KEYS])
    hidden = len(ordered) - _MAX_LISTED_KEYS
    return f"{shown} (+{hidden} more)" if hidden > 0 else shown


def describe_env_change(old: Mapping[str, str], new: Mapping[str, str]) -> str | None:
    """'env keys added A; changed B; removed C', naming keys and never values."""
    added = new.keys() - old.keys()
    removed = old.keys() - new.keys()
    changed = {k for k in old.keys() & new.keys() if old[k] != new[k]}
    parts = []
    if added:
        parts.append(f"added {_key_list(added)}")
    if changed:
        parts.append(f"changed {_key_list(changed)}")
    if removed:
        parts.append(f"removed {_key_list(removed)}")
    if not parts:
        return None
    return "env keys " + "; ".join(parts)


def _or_default(value: object) -> str:
    return "default" if value is None else str(value)


# The order fields are named in; a field changes the message in one of the ways below.
_FIELDS = (
    "restart_stamp",
    "template",
    "image",
    "container_port",
    "env",
    "visibility",
    "replicas",
    "strategy",
    "auto_update",
    "drift",
    "base_domain",
    "ingress_controller",
    "tenancy",
    "program_version",
    "name",
)
_LABELS = {"container_port": "port", "base_domain": "base domain", "program_version": "program version"}
_TENANCY_LABELS = {
    "ingress_namespace": "ingress namespace",
    "egress_deny": "egress rules",
    "quota": "quota",
    "container_max": "container max",
    "resources": "container sizes",
}


def _describe_field(field: str, old: DeploymentSpec, new: DeploymentSpec) -> str:
    before, after = getattr(old, field), getattr(new, field)
    if field == "restart_stamp":
        return "restart" if after else "restart stamp cleared"
    if field == "env":
        return f"config: {describe_env_change(before, after)}"
    if field == "auto_update":
        return _describe_auto_update(before, after, new.strategy)
    if field == "drift":
        return _describe_drift(before, after)
    if field == "ingress_controller":
        return f"ingress controller {'on' if after else 'off'}"
    if field == "tenancy":
        changed = [label for name, label in _TENANCY_LABELS.items() if getattr(before, name) != getattr(after, name)]
        return f"namespace rules changed: {', '.join(changed)}"
    return f"{_LABELS.get(field, field)} {_or_default(before)} -> {_or_default(after)}"


def describe_change(old: DeploymentSpec | None, new: DeploymentSpec) -> str:
    """A one-line revision message for going from `old` to `new` (None: a create).

    It becomes the Pulumi update message, i.e. what `pulumi stack history` and the
    history API show, so it names what changed and NEVER an env value.
    """
    if old is None:
        if new.template == "image" and new.image:
            return f"create image {new.image}"
        return f"create {new.template}"
    parts = [_describe_field(field, old, new) for field in _FIELDS if getattr(old, field) != getattr(new, field)]
    return "; ".join(parts) if parts else "no changes"


def _describe_auto_update(old: AutoUpdate, new: AutoUpdate, strategy: str) -> str:
    if new.enabled and not old.enabled:
        return f"auto-update enabled ({strategy}, {new.policy})"
    if old.enabled and not new.enabled:
        return "auto-update disabled"
    candidates = (
        (new.policy != old.policy, f"policy {old.policy} -> {new.policy}"),
        (new.include != old.include, "include filter changed"),
        (new.exclude != old.exclude, "exclude filter changed"),
        (new.interval_s != old.interval_s, f"interval {_or_default(old.interval_s)} -> {_or_default(new.interval_s)}"),
        (new.prerelease != old.prerelease, f"prereleases {'included' if new.prerelease else 'excluded'}"),
    )
    return "auto-update " + ", ".join(text for changed, text in candidates if changed)


def _describe_drift(old: DriftSettings, new: DriftSettings) -> str:
    """'drift policy report -> reconcile, interval default -> 600'."""
    parts = []
    if new.policy != old.policy:
        parts.append(f"policy {old.policy} -> {new.policy}")
    if new.interval_s != old.interval_s:
        parts.append(f"interval {_or_default(old.interval_s)} -> {_or_default(new.interval_s)}")
    return "drift " + ", ".join(parts)
