"""Pulumi operations on one deployment's stack: apply a spec, preview a change,
destroy, read history and recover after a crash.

Each function is blocking (the Automation API is) and is called from a worker thread,
never on the event loop. The whole spec goes into stack config (`programs.spec`); the
database keeps each update's config as a revision, so rollback is "apply revision N's
config" and the backend keeps only a short history (stacks.history_prune). The config
file's text is handed in and out (`stacks.stackconfig`): callers
keep it in the database, and each operation renders it into a private file of its
own, so no two operations (two previews of one deployment, say) share a file and no
secret is ever on a command line. An operation starts one pulumi process (a new
stack's `stack init` aside; `stacks.oneshot`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import msgspec
from pulumi import automation as auto

from programs.deployment import outputs_for, program_from_config
from programs.spec import KEY_AWAIT_TIMEOUT, DeploymentSpec, config_to_spec, spec_to_config
from programs.templates import load_catalog, resolve_services
from stacks import history_prune, locks, ownership, stackconfig, workspace
from stacks.events import Collector, EngineError, OnEvent, Step
from stacks.oneshot import OneShotStack
from stacks.settings import Settings

# Keys that are not part of the deployment's spec: they describe where it runs.
KUBECONFIG_KEY = "shipstack:kubeconfig"
log = logging.getLogger("shipstack.engine")
DEFAULT_PROVIDERS_KEY = "pulumi:disable-default-providers"

__all__ = ["EngineError", "OnEvent", "Step"]


class Ingress(msgspec.Struct, frozen=True):
    id: str
    name: str
    host: str
    url: str


class ApplyResult(msgspec.Struct, frozen=True):
    ingresses: list[Ingress]
    changes: dict[str, int]
    changed: bool
    config: str  # the stack config file the update ran with: the new config of record


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


def _stack(settings: Settings, name: str) -> OneShotStack:
    return OneShotStack(name, workspace.shared(settings, program_from_config))


def stack_values(spec: DeploymentSpec, settings: Settings) -> dict[str, tuple[str, bool]]:
    """The stack config for `spec` where this service deploys: {key: (value, is_secret)}."""
    values = dict(spec_to_config(spec))
    kubeconfig = settings.engine.kubeconfig.read_text() if settings.engine.kubeconfig else ""
    values[KUBECONFIG_KEY] = (kubeconfig, True)
    # Every resource must name the explicit provider: the service's own
    # KUBECONFIG must never decide which cluster a tenant's stack lands on.
    values[DEFAULT_PROVIDERS_KEY] = ('["kubernetes"]', False)
    values[KEY_AWAIT_TIMEOUT] = (str(settings.engine.rollout_timeout_s), False)
    return values


def render_config(settings: Settings, spec: DeploymentSpec, previous: str | None) -> str:
    return stackconfig.render(stack_values(spec, settings), settings.engine.passphrase, previous)


def spec_of(config: str | None, passphrase: str) -> DeploymentSpec | None:
    """The spec a stack config file holds, or None for no config."""
    values = stackconfig.read(config, passphrase) or {}
    plain = {k: v for k, v in values.items() if k.startswith("shipstack:") and k != KUBECONFIG_KEY}
    return config_to_spec(plain) if plain else None


@contextlib.contextmanager
def config_file(name: str, text: str | None) -> Iterator[str | None]:
    """`text` as `Pulumi.<name>.yaml` in a folder only this process can read, for one
    operation (None for no text: destroy and refresh read what they need from the
    state, secrets with the state's own secrets manager)."""
    if text is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="shipstack-op-") as folder:
        path = Path(folder) / f"Pulumi.{name}.yaml"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(text)
        yield str(path)


def ingresses_of(spec: DeploymentSpec) -> list[Ingress]:
    """The spec's ingresses, as the program's outputs would give them."""
    template = load_catalog()[spec.template]
    return [Ingress(**i) for i in outputs_for(spec, resolve_services(template, spec))["ingresses"]]


def apply(
    settings: Settings,
    spec: DeploymentSpec,
    message: str,
    on_event: OnEvent | None = None,
    *,
    config: str,
    create: bool = False,
    refresh: bool = False,
) -> ApplyResult:
    """Runs `up` for `spec` with `config`, its stack config file (`render_config`);
    `create` makes the stack first when it does not exist; `refresh` first reads every
    object back from the cluster, so `up` also undoes edits made behind the stack's
    back (a reconcile)."""
    ownership.check_namespace(settings.engine.kubeconfig, spec.name)
    stack = _stack(settings, spec.name)
    if create:
        with contextlib.suppress(auto.errors.StackAlreadyExistsError):
            stack.workspace.create_stack(spec.name)
    text = config
    collector = Collector(on_event)
    with config_file(spec.name, text) as path, locks.cleanup_after(settings, spec.name):
        try:
            stack.up_once(collector, message=message, config_file=path, color="never", refresh=refresh)
        except auto.errors.CommandError as exc:
            raise collector.error(exc) from exc
    try:
        history_prune.prune(settings, spec.name)
    except Exception:  # the update succeeded; a longer history in the backend is harmless
        log.warning("pruning the backend history of %s failed", spec.name, exc_info=True)
    changed = any(k != "same" and v for k, v in collector.changes.items())
    return ApplyResult(ingresses=ingresses_of(spec), changes=collector.changes, changed=changed, config=text)


def preview(settings: Settings, spec: DeploymentSpec, current: str | None) -> PreviewResult:
    """The exact diff `apply(spec)` would make, changing nothing (the proposed config
    goes to this preview's own file; the config of record is untouched)."""
    stack = _stack(settings, spec.name)
    collector = Collector(None)
    with config_file(spec.name, render_config(settings, spec, current)) as path:
        try:
            result = stack.preview(on_event=collector, diff=True, config_file=path, color="never")
        except auto.errors.CommandError as exc:
            raise collector.error(exc) from exc
    steps = [s for s in collector.steps if s.op != "same"]
    pods_roll = any(
        s.type == "kubernetes:apps/v1:Deployment"
        and (s.op == "replace" or any(d.startswith("spec.template") for d in s.diffs))
        for s in steps
    )
    changes = {str(k): v for k, v in result.change_summary.items()}
    return PreviewResult(steps=steps, changes=changes, pods_roll=pods_roll)


def destroy(settings: Settings, name: str, current: str | None, on_event: OnEvent | None = None) -> None:
    """Deletes every Kubernetes object of the stack, then the stack."""
    stack = _stack(settings, name)
    collector = Collector(on_event)
    try:
        with config_file(name, current) as path, locks.cleanup_after(settings, name):
            stack.destroy_once(collector, message="delete", config_file=path, color="never")
    except auto.errors.StackNotFoundError:
        return  # never created (a create that failed before `stack init`)
    except auto.errors.CommandError as exc:
        raise collector.error(exc) from exc
    with contextlib.suppress(auto.errors.StackNotFoundError):
        stack.workspace.remove_stack(name)


def history(settings: Settings, name: str) -> list[Revision]:
    """Every update in the backend's own history of the stack, oldest first, numbered
    from 1 (DIY backends report version 0 for every entry), secrets blinded. What the
    ordinary `pulumi stack history` shows; the service keeps its revisions in the
    database (`persistence.revisions`)."""
    try:
        entries = _stack(settings, name).history(show_secrets=False)
    except auto.errors.StackNotFoundError:
        return []
    return [
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
        for n, e in enumerate(reversed(entries), start=1)
    ]


def recover(settings: Settings, name: str, current: str | None, *, holder_dead: bool) -> None:
    """Clears what an interrupted operation left behind: the backend lock (only if the
    worker that ran it is dead: `holder_dead`; else locks.StackBusy) and pending
    operations in the state. Called with the stack's lock held (stacks.stacklock)."""
    locks.clear_left_over(settings, name, holder_dead=holder_dead)
    stack = _stack(settings, name)
    # A failed refresh is left for the operation's own command to report.
    suppress = contextlib.suppress(auto.errors.CommandError)
    with config_file(name, current) as path, suppress, locks.cleanup_after(settings, name):
        stack.refresh_once(
            Collector(None), clear_pending_creates=True, message="recover after interrupted operation",
            config_file=path, color="never",
        )  # fmt: skip
