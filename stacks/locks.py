"""The backend's own stack lock, as a second line of defence: shipstack serialises
operations per stack itself, but a killed `pulumi` leaves its DIY lock behind, and
the lock never expires by itself."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

from pulumi import automation as auto

from programs.deployment import program_from_config
from stacks import workspace
from stacks.events import EngineError
from stacks.oneshot import OneShotStack
from stacks.settings import Settings


def release_stale(settings: Settings, name: str) -> None:
    """Deletes a file-backend lock whose owning pulumi process is dead.

    `pulumi cancel` on a DIY backend just deletes lock files; doing that while
    the owner still runs would allow two concurrent updates, so check the pid.
    """
    if not settings.engine.backend_url.startswith("file://"):
        with contextlib.suppress(auto.errors.CommandError):
            OneShotStack(name, workspace.shared(settings, program_from_config)).cancel()
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
