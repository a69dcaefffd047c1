"""Revision messages: a one-line description of a spec change, naming keys, never values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from programs.spec import AutoUpdate, DeploymentSpec

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


def describe_change(old: DeploymentSpec | None, new: DeploymentSpec) -> str:
    """A one-line revision message for going from `old` to `new` (None: a create).

    It becomes the Pulumi update message, i.e. what `pulumi stack history` and the
    history API show, so it names what changed and NEVER an env value.
    """
    if old is None:
        if new.template == "image" and new.image:
            return f"create image {new.image}"
        return f"create {new.template}"

    parts: list[str] = []
    if new.restart_stamp != old.restart_stamp:
        parts.append("restart" if new.restart_stamp else "restart stamp cleared")
    if new.template != old.template:
        parts.append(f"template {old.template} -> {new.template}")
    if new.image != old.image:
        parts.append(f"image {_or_default(old.image)} -> {_or_default(new.image)}")
    if new.container_port != old.container_port:
        parts.append(f"port {_or_default(old.container_port)} -> {_or_default(new.container_port)}")
    env_change = describe_env_change(old.env, new.env)
    if env_change:
        parts.append(f"config: {env_change}")
    if new.visibility != old.visibility:
        parts.append(f"visibility {old.visibility} -> {new.visibility}")
    if new.replicas != old.replicas:
        parts.append(f"replicas {old.replicas} -> {new.replicas}")
    if new.strategy != old.strategy:
        parts.append(f"strategy {old.strategy} -> {new.strategy}")
    if new.auto_update != old.auto_update:
        parts.append(_describe_auto_update(old.auto_update, new.auto_update, new.strategy))
    if new.base_domain != old.base_domain:
        parts.append(f"base domain {old.base_domain} -> {new.base_domain}")
    if new.ingress_controller != old.ingress_controller:
        parts.append(f"ingress controller {'on' if new.ingress_controller else 'off'}")
    if new.program_version != old.program_version:
        parts.append(f"program version {old.program_version} -> {new.program_version}")
    if new.name != old.name:
        parts.append(f"name {old.name} -> {new.name}")
    return "; ".join(parts) if parts else "no changes"


def _describe_auto_update(old: AutoUpdate, new: AutoUpdate, strategy: str) -> str:
    if new.enabled and not old.enabled:
        return f"auto-update enabled ({strategy}, {new.policy})"
    if old.enabled and not new.enabled:
        return "auto-update disabled"
    changes = []
    if new.policy != old.policy:
        changes.append(f"policy {old.policy} -> {new.policy}")
    if new.include != old.include:
        changes.append("include filter changed")
    if new.exclude != old.exclude:
        changes.append("exclude filter changed")
    if new.interval_s != old.interval_s:
        changes.append(f"interval {_or_default(old.interval_s)} -> {_or_default(new.interval_s)}")
    if new.prerelease != old.prerelease:
        changes.append(f"prereleases {'included' if new.prerelease else 'excluded'}")
    return "auto-update " + ", ".join(changes)
