"""What a queued operation asks for, and the spec it leads to: pure functions.

The API records a *change* (new env, a restart, another image...) rather than
a whole new spec, and the worker applies it to the spec the stack holds when
the operation runs. So two writes queued back to back compose instead of the
second silently undoing the first, and a change that leaves the spec as it is
starts no Pulumi update.
"""

from __future__ import annotations

import msgspec

from programs.spec import AutoUpdate, DeploymentSpec, DriftSettings
from programs.templates import Template, keep_generated_env
from programs.tenancy import Tenancy


class Change(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Fields left as None are kept from the current spec."""

    env: dict[str, str] | None = None
    image: str | None = None
    visibility: str | None = None
    strategy: str | None = None
    auto_update: AutoUpdate | None = None
    drift: DriftSettings | None = None
    restart_stamp: str | None = None
    rollback_version: int | None = None


def apply_change(current: DeploymentSpec, change: Change, template: Template | None = None) -> DeploymentSpec:
    """The spec after `change`; rollback is resolved by the engine, not here.

    A new env replaces the old one whole, except the secrets the template
    generated at create time (a database password already inside a volume).
    """
    updates = {
        field: getattr(change, field)
        for field in ("env", "image", "visibility", "strategy", "auto_update", "drift", "restart_stamp")
        if getattr(change, field) is not None
    }
    if change.env is not None and template is not None:
        updates["env"] = keep_generated_env(template, current.env, change.env)
    return msgspec.structs.replace(current, **updates) if updates else current


def with_placement(
    spec: DeploymentSpec, base_domain: str, ingress_controller: bool, tenancy: Tenancy | None = None
) -> DeploymentSpec:
    """Where the service deploys now wins over what an old revision recorded.

    `tenancy` (the operator's namespace rules) is kept from the spec when None; the
    spec stores only the resource overrides of its own template.
    """
    placed = msgspec.structs.replace(spec, base_domain=base_domain, ingress_controller=ingress_controller)
    if tenancy is not None:
        placed = msgspec.structs.replace(placed, tenancy=tenancy.for_template(spec.template))
    return placed
