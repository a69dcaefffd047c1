"""Pulumi operations on one deployment's stack: apply a spec, preview a change,
destroy, read history and recover after a crash.

Each function is blocking (the Automation API is) and is called from a worker
thread by the operation runner, never on the event loop. The whole spec goes
into stack config through `programs.spec.spec_to_config`, so Pulumi's update
history is the revision history and rollback is "apply revision N's config".
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from pulumi import automation as auto

from programs.deployment import program_from_config
from programs.spec import KEY_AWAIT_TIMEOUT, DeploymentSpec, config_to_spec, spec_to_config
from stacks import ownership, stackconfig, workspace
from stacks.settings import Settings

# Keys that are not part of the deployment's spec: they describe where it runs.
KUBECONFIG_KEY = "shipstack:kubeconfig"
DEFAULT_PROVIDERS_KEY = "pulumi:disable-default-providers"
OnEvent = Callable[[dict[str, Any]], None]


class Ingress(msgspec.Struct, frozen=True):
    id: str
    name: str
    host: str
    url: str


class ApplyResult(msgspec.Struct, frozen=True):
    ingresses: list[Ingress]
    changes: dict[str, int]
    changed: bool


class Step(msgspec.Struct, frozen=True):
    op: str
    type: str
    name: str
    diffs: list[str] = []


class PreviewResult(msgspec.Struct, frozen=True):
    steps: list[Step]
    changes: dict[str, int]
    pods_roll: bool


class Revision(msgspec.Struct, frozen=True):
    version: int
    kind: str
    result: str
    message: str
    start_time: datetime
    end_time: datetime | None
    resource_changes: dict[str, int]
    config: dict[str, str]


class EngineError(RuntimeError):
    """A Pulumi operation failed; the message is what a user should read."""


def _stack(settings: Settings, name: str) -> auto.Stack:
    return workspace.stack(settings, name, program_from_config)


def stack_config(spec: DeploymentSpec, settings: Settings) -> dict[str, auto.ConfigValue]:
    values = {k: auto.ConfigValue(value=v, secret=s) for k, (v, s) in spec_to_config(spec).items()}
    kubeconfig = settings.engine.kubeconfig.read_text() if settings.engine.kubeconfig else ""
    values[KUBECONFIG_KEY] = auto.ConfigValue(value=kubeconfig, secret=True)
    # Every resource must name the explicit provider: the service's own
    # KUBECONFIG must never decide which cluster a tenant's stack lands on.
    values[DEFAULT_PROVIDERS_KEY] = auto.ConfigValue(value='["kubernetes"]', secret=False)
    values[KEY_AWAIT_TIMEOUT] = auto.ConfigValue(value=str(settings.engine.rollout_timeout_s), secret=False)
    return values


def current_spec(settings: Settings, name: str) -> DeploymentSpec | None:
    """The spec the stack's config holds now, or None for a stack never configured."""
    config = stackconfig.read(settings, name) or {}
    plain = {k: v for k, v in config.items() if k.startswith("shipstack:") and k != KUBECONFIG_KEY}
    return config_to_spec(plain) if plain else None


def _event_dict(event: auto.EngineEvent) -> dict[str, Any] | None:
    """A small JSON-able view of an engine event (secrets are already masked)."""
    base = {"sequence": event.sequence, "timestamp": event.timestamp}
    if event.resource_pre_event and not event.resource_pre_event.metadata.type.startswith("pulumi:"):
        m = event.resource_pre_event.metadata
        # Property paths that change ("spec.template.metadata.annotations..."), the
        # detailed diff when the engine computed one, else the top-level keys.
        diffs = sorted(m.detailed_diff) if m.detailed_diff else list(m.diffs or [])
        return base | {"type": "step", "op": str(m.op.value), "resource": m.type, "urn": m.urn, "diffs": diffs}
    if event.res_outputs_event and not event.res_outputs_event.metadata.type.startswith("pulumi:"):
        m = event.res_outputs_event.metadata
        return base | {"type": "done", "op": str(m.op.value), "resource": m.type, "urn": m.urn}
    if event.diagnostic_event and event.diagnostic_event.severity in ("error", "warning", "info"):
        d = event.diagnostic_event
        if d.ephemeral:
            return None
        return base | {"type": "diagnostic", "severity": d.severity, "message": d.message.strip(), "urn": d.urn}
    if event.summary_event:
        s = event.summary_event
        return base | {
            "type": "summary",
            "changes": {str(k): v for k, v in (s.resource_changes or {}).items()},
            "duration_s": s.duration_seconds,
        }
    return None


class _Collector:
    """Engine events -> progress callback, and the error diagnostics for lastError."""

    def __init__(self, on_event: OnEvent | None) -> None:
        self.on_event = on_event
        self.errors: list[str] = []
        self.steps: list[Step] = []

    def __call__(self, event: auto.EngineEvent) -> None:
        item = _event_dict(event)
        if item is None:
            return
        if item["type"] == "diagnostic" and item["severity"] == "error":
            self.errors.append(item["message"])
        if item["type"] == "step":
            self.steps.append(
                Step(op=item["op"], type=item["resource"], name=item["urn"].rsplit("::", 1)[-1], diffs=item["diffs"])
            )
        if self.on_event is not None:
            self.on_event(item)

    def error(self, exc: Exception) -> EngineError:
        detail = "; ".join(dict.fromkeys(self.errors)) or _short(str(exc))
        return EngineError(detail)


def _short(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " ..."


def apply(settings: Settings, spec: DeploymentSpec, message: str, on_event: OnEvent | None = None) -> ApplyResult:
    """Writes the spec into the stack's config and runs `up`."""
    ownership.check_namespace(settings.engine.kubeconfig, spec.name)
    stack = _stack(settings, spec.name)
    stack.set_all_config(stack_config(spec, settings))
    collector = _Collector(on_event)
    try:
        result = stack.up(message=message, on_event=collector, show_secrets=False, color="never")
    except auto.errors.CommandError as exc:
        raise collector.error(exc) from exc
    changes = {str(k): v for k, v in (result.summary.resource_changes or {}).items()}
    raw = result.outputs.get("ingresses")
    ingresses = [Ingress(**i) for i in (raw.value if raw else [])]
    changed = any(k != "same" and v for k, v in changes.items())
    return ApplyResult(ingresses=ingresses, changes=changes, changed=changed)


def preview(settings: Settings, spec: DeploymentSpec) -> PreviewResult:
    """The exact diff `apply(spec)` would make, changing nothing.

    The proposed config goes to a scratch copy of the stack's config file, so
    the real stack config (and so the next revision) is left untouched.
    """
    stack = _stack(settings, spec.name)
    scratch = settings.engine.stacks_dir / f".preview-{spec.name}-{os.getpid()}.yaml"
    real = settings.engine.stacks_dir / f"Pulumi.{spec.name}.yaml"
    scratch.write_bytes(real.read_bytes() if real.exists() else b"")
    collector = _Collector(None)
    try:
        args = ["config", "set-all", "--stack", spec.name, "--config-file", str(scratch)]
        for key, value in stack_config(spec, settings).items():
            args += ["--secret" if value.secret else "--plaintext", f"{key}={value.value}"]
        stack.workspace.pulumi_command.run(args, str(settings.engine.stacks_dir), stack.workspace.env_vars)
        result = stack.preview(on_event=collector, diff=True, config_file=str(scratch), color="never")
    except auto.errors.CommandError as exc:
        raise collector.error(exc) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()
    steps = [s for s in collector.steps if s.op != "same"]
    pods_roll = any(
        s.type == "kubernetes:apps/v1:Deployment"
        and (s.op == "replace" or any(d.startswith("spec.template") for d in s.diffs))
        for s in steps
    )
    changes = {str(k): v for k, v in result.change_summary.items()}
    return PreviewResult(steps=steps, changes=changes, pods_roll=pods_roll)


def destroy(settings: Settings, name: str, on_event: OnEvent | None = None) -> None:
    """Deletes every Kubernetes object of the stack, then the stack and its config."""
    stack = _stack(settings, name)
    collector = _Collector(on_event)
    try:
        stack.destroy(message="delete", on_event=collector, color="never")
    except auto.errors.CommandError as exc:
        raise collector.error(exc) from exc
    stack.workspace.remove_stack(name)
    with contextlib.suppress(FileNotFoundError):
        (settings.engine.stacks_dir / f"Pulumi.{name}.yaml").unlink()


def history(settings: Settings, name: str, *, show_secrets: bool = False) -> list[Revision]:
    """Every update of the stack, oldest first, numbered from 1.

    DIY backends report version 0 for every entry, so the number is the
    position in the stack's own history.
    """
    try:
        # Select, never create: a read must not race the create of a new stack.
        stack = auto.Stack.select(name, workspace.shared(settings, program_from_config))
    except auto.errors.StackNotFoundError:
        return []
    entries = stack.history(show_secrets=show_secrets)
    revisions = []
    for n, e in enumerate(reversed(entries), start=1):
        revisions.append(
            Revision(
                version=n,
                kind=e.kind,
                result=e.result,
                message=e.message or "",
                start_time=e.start_time,
                end_time=e.end_time,
                resource_changes={str(k): v for k, v in (e.resource_changes or {}).items()},
                config={k: v.value for k, v in e.config.items() if k != KUBECONFIG_KEY},
            )
        )
    return revisions


def spec_at(settings: Settings, name: str, version: int) -> DeploymentSpec:
    """The exact spec revision `version` ran with (secrets decrypted)."""
    for rev in history(settings, name, show_secrets=True):
        if rev.version == version:
            if rev.kind != "update":
                raise EngineError(f"revision {version} is a {rev.kind}, not an update; pick an update revision")
            plain = {k: v for k, v in rev.config.items() if k.startswith("shipstack:")}
            return config_to_spec(plain)
    raise EngineError(f"revision {version} does not exist")


def recover(settings: Settings, name: str) -> None:
    """Clears what a killed `up` left behind: the backend lock and pending operations.

    Called only for stacks whose operation this service had claimed and whose
    process is gone, so no live update can be holding the lock.
    """
    _release_stale_lock(settings, name)
    stack = _stack(settings, name)
    with contextlib.suppress(auto.errors.CommandError):
        stack.refresh(clear_pending_creates=True, message="recover after interrupted operation", color="never")


def _release_stale_lock(settings: Settings, name: str) -> None:
    """Deletes a file-backend lock whose owning pulumi process is dead.

    `pulumi cancel` on a DIY backend just deletes lock files; doing that while
    the owner still runs would allow two concurrent updates, so check the pid.
    """
    if not settings.engine.backend_url.startswith("file://"):
        with contextlib.suppress(auto.errors.CommandError):
            _stack(settings, name).cancel()
        return
    root = Path(settings.engine.backend_url.removeprefix("file://"))
    lock_dir = root / ".pulumi" / "locks" / "organization" / workspace.PROJECT / name
    for lock in lock_dir.glob("*.json") if lock_dir.exists() else []:
        try:
            info = json.loads(lock.read_text())
        except (OSError, ValueError):
            info = {}
        pid, host = int(info.get("pid") or 0), info.get("hostname") or socket.gethostname()
        if host != socket.gethostname() or (pid and _pid_alive(pid)):
            raise EngineError(
                f"stack {name} is locked by pulumi process {pid} on {host}; if that process is gone, "
                f"run 'pulumi cancel -s {name}' and retry"
            )
        lock.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
