"""Drift checks of one deployment's stack: Pulumi's refresh in preview mode compares
every object the stack's state records with the object live in the cluster, and
changes nothing (neither the cluster nor the state).

`stack.preview_refresh()` runs `pulumi refresh --preview-only`; each object's step
carries the engine's detailed diff and both versions of the object, which
`stacks.drift_fields` turns into what drifted. Blocking, like `stacks.engine`: the
operation runner calls it from a worker thread.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence

import msgspec
from pulumi import automation as auto

from programs.deployment import program_from_config
from programs.spec import KEY_DRIFT, DriftSettings, drift_settings_of
from stacks import engine, stackconfig, workspace
from stacks.drift_fields import DriftedObject, object_drift
from stacks.events import Collector, EngineError, OnEvent
from stacks.oneshot import OneShotStack
from stacks.settings import Settings

_SHOWN_OBJECTS = 3
_SHOWN_FIELDS = 3


class DriftReport(msgspec.Struct, frozen=True):
    objects: list[DriftedObject]  # only those that drifted, by kind and name
    changes: dict[str, int]  # the refresh preview's own count (same, update, delete)


@functools.cache
def _confirming(shared: auto.LocalWorkspace) -> auto.LocalWorkspace:
    """The shared workspace, for `refresh --preview-only`: the CLI refuses that flag
    together with PULUMI_SKIP_CONFIRMATIONS (which it reads as `--yes`). A shallow
    copy with its own env, rather than a second LocalWorkspace, which would rewrite
    Pulumi.yaml under the other workers' running pulumi processes."""
    clone = copy.copy(shared)
    clone.env_vars = {**shared.env_vars, "PULUMI_SKIP_CONFIRMATIONS": "false"}
    return clone


def _object_of(event: auto.EngineEvent) -> DriftedObject | None:
    outputs = event.res_outputs_event
    if outputs is None or outputs.metadata.type.startswith("pulumi:"):
        return None  # the stack itself and its provider are not objects in the cluster
    m = outputs.metadata
    return object_drift(
        m.type,
        m.urn.rsplit("::", 1)[-1],
        str(m.op.value),
        list(m.detailed_diff or {}) or list(m.diffs or []),
        m.old.outputs if m.old is not None else None,
        m.new.outputs if m.new is not None else None,
    )


def check(settings: Settings, name: str, config: str | None, on_event: OnEvent | None = None) -> DriftReport:
    """What differs between the stack's state and the cluster, changing nothing;
    `config` is the stack's config of record."""
    if not config:
        raise EngineError(f"deployment {name} has no stack yet: there is nothing to compare")
    stack = OneShotStack(name, _confirming(workspace.shared(settings, program_from_config)))
    collector = Collector(on_event)  # the same progress and error diagnostics as every operation
    found: list[DriftedObject] = []

    def on(event: auto.EngineEvent) -> None:
        collector(event)
        drifted = _object_of(event)
        if drifted is not None:
            found.append(drifted)

    with engine.config_file(name, config) as path:
        try:
            result = stack.preview_refresh(on_event=on, color="never", config_file=path)
        except auto.errors.StackNotFoundError:
            raise EngineError(f"deployment {name} has no stack yet: there is nothing to compare") from None
        except auto.errors.CommandError as exc:
            raise collector.error(exc) from exc
    objects = sorted(found, key=lambda o: (o.kind, o.name))
    return DriftReport(objects=objects, changes={str(k): v for k, v in result.change_summary.items()})


def settings_of(config: str | None) -> DriftSettings:
    """The deployment's drift settings from its stack config of record (plain, no decryption)."""
    return drift_settings_of(stackconfig.read_plain(config, (KEY_DRIFT,)).get(KEY_DRIFT))


def describe(objects: Sequence[DriftedObject]) -> str:
    """'Deployment nginx (spec.replicas), Service nginx (deleted)': names and paths only."""

    def one(o: DriftedObject) -> str:
        if o.change == "deleted":
            return f"{o.kind} {o.name} (deleted)"
        more = len(o.fields) + o.omitted - _SHOWN_FIELDS
        return f"{o.kind} {o.name} ({', '.join(o.fields[:_SHOWN_FIELDS])}{f' +{more} more' if more > 0 else ''})"

    text = ", ".join(one(o) for o in objects[:_SHOWN_OBJECTS])
    hidden = len(objects) - _SHOWN_OBJECTS
    return text + (f" and {hidden} more objects" if hidden > 0 else "")
