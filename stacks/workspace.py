"""Pulumi workspaces for deployments: one stack per deployment, all in project
`shipstack`, in one backend.

The work dir (`<data>/stacks/`) holds only the project file: each stack's config
(`Pulumi.<stack>.yaml`, with its passphrase salt) is kept in the database and handed
to every command as a private file of its own (`stacks.engine.config_file`), so any
host can run any stack; a person gets it with `shipstack stack-config NAME`. The CLI
never reaches for the network: plugins come from shipstack's own PULUMI_HOME and
update checks are off.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from pulumi import automation as auto

from stacks.settings import REPO_ROOT, EngineSettings, Settings

PROJECT = "shipstack"


def engine_env(engine: EngineSettings) -> dict[str, str]:
    """Environment for every pulumi CLI process shipstack starts."""
    return {
        "PULUMI_BACKEND_URL": engine.backend_url,
        "PULUMI_CONFIG_PASSPHRASE": engine.passphrase,
        "PULUMI_HOME": str(engine.pulumi_home),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # The salt is also kept in the state, so a person with only the
        # backend and the passphrase can still decrypt history.
        "PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER": "true",
        # Each update would also copy the whole checkpoint to .pulumi/backups, never
        # pruned: the database keeps every revision's config (stacks.history_prune).
        "PULUMI_DIY_BACKEND_DISABLE_CHECKPOINT_BACKUPS": "true",
        # Diagnostics without ANSI colour codes, for lastError and logs.
        "PULUMI_SKIP_CONFIRMATIONS": "true",
        "NO_COLOR": "1",
        "PATH": engine.path,
    }


@functools.cache
def pulumi_command(cache_dir: Path, niceness: int) -> auto.PulumiCommand:
    """One PulumiCommand per process (constructing it runs `pulumi version`), whose
    `bin/pulumi` runs the CLI built by toolchain/build.sh below the API's CPU priority
    (its provider plugins inherit that) and killed with the worker that started it, so
    a dead worker leaves no `pulumi` holding its stack."""
    real = cache_dir / "bin" / "pulumi"
    root = Path(tempfile.mkdtemp(prefix="shipstack-cli-"))
    (root / "bin").mkdir()
    wrapper = root / "bin" / "pulumi"
    # By absolute path: the CLI runs with the engine's PATH, which may hold no /usr/bin.
    nice = shlex.quote(shutil.which("nice") or "nice")
    setpriv = shutil.which("setpriv")
    guard = f"{shlex.quote(setpriv)} --pdeathsig KILL -- " if setpriv else ""
    text = f'#!/bin/sh\nexec {nice} -n {niceness} {guard}{shlex.quote(str(real))} "$@"\n'
    # Written by a child process: a file this process held open for writing would be
    # inherited, for a moment, by every process another thread forks meanwhile, and
    # running the file in that moment fails with ETXTBSY ("Text file busy"; seen on a
    # worker's first operation while other threads started processes).
    subprocess.run(["sh", "-c", 'cat > "$1" && chmod 755 "$1"', "sh", str(wrapper)], input=text.encode(), check=True)
    return auto.PulumiCommand(root=str(root))


def _options(engine: EngineSettings) -> dict:
    work_dir = engine.stacks_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    if engine.backend_url.startswith("file://"):
        Path(engine.backend_url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    from stacks import backend_store  # it names this module's project

    backend_store.prepare(engine.backend_url)
    return {
        "work_dir": str(work_dir),
        "pulumi_home": str(engine.pulumi_home),
        "env_vars": engine_env(engine),
        "secrets_provider": "passphrase",
        "project_settings": auto.ProjectSettings(
            name=PROJECT,
            runtime="python",
            main=str(REPO_ROOT / "programs"),
            backend=auto.ProjectBackend(url=engine.backend_url),
        ),
        "pulumi_command": pulumi_command(engine.cache_dir, engine.niceness),
    }


@functools.cache
def _shared(engine: EngineSettings, program: Callable[[], None]) -> auto.LocalWorkspace:
    return auto.LocalWorkspace(program=program, **_options(engine))


def shared(settings: Settings, program: Callable[[], None]) -> auto.LocalWorkspace:
    """One workspace for every stack: they share the work dir, the project and
    the program, and every command names its stack explicitly. Sharing it
    writes Pulumi.yaml once instead of once per operation, from one thread."""
    return _shared(settings.engine, program)


def stack(settings: Settings, name: str, program: Callable[[], None]) -> auto.Stack:
    """Selects the deployment's stack, creating it the first time."""
    return auto.Stack.create_or_select(name, shared(settings, program))
