"""The single-machine layout of earlier versions, imported on first start: each
deployment's `<data>/stacks/Pulumi.<name>.yaml` becomes its config of record, and the
stack's update history in the backend becomes its revisions (with the config each
update ran, as the file's salt encrypts it), so history and rollback go on working."""

from __future__ import annotations

import logging

from pulumi import automation as auto
from sqlalchemy.orm import Session

from persistence import revisions
from persistence.models import Deployment
from programs.deployment import program_from_config
from programs.spec import SECRET_CONFIG_KEYS
from stacks import stackconfig, workspace
from stacks.oneshot import OneShotStack
from stacks.settings import Settings

log = logging.getLogger("shipstack.runner")
CONFIG_FILE = "Pulumi.{name}.yaml"


def import_deployment(s: Session, settings: Settings, dep: Deployment) -> bool:
    """Imports one deployment's file and history; False when it has no file."""
    path = settings.engine.stacks_dir / CONFIG_FILE.format(name=dep.name)
    if not path.is_file():
        return False
    dep.stack_config = path.read_text()
    if not revisions.for_deployment(s, dep.id):
        for entry in _history(settings, dep.name):
            values = {k: (v.value, k in SECRET_CONFIG_KEYS or v.secret) for k, v in entry.config.items()}
            config = stackconfig.render(values, settings.engine.passphrase, dep.stack_config)
            changes = {str(k): v for k, v in (entry.resource_changes or {}).items()}
            revisions.record(
                s, dep.id, result=entry.result, message=entry.message or "", config=config,
                resource_changes=changes, operation_id=None, started_at=entry.start_time,
            )  # fmt: skip
    log.info("imported the stack config and history of %s from %s", dep.name, path)
    return True


def _history(settings: Settings, name: str) -> list[auto.UpdateSummary]:
    """The stack's updates, oldest first, secrets decrypted (the file in the work
    folder holds the salt)."""
    stack = OneShotStack(name, workspace.shared(settings, program_from_config))
    try:
        entries = stack.history(show_secrets=True)
    except auto.errors.StackNotFoundError:
        return []
    return [e for e in reversed(entries) if e.kind == "update"]
