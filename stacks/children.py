"""The pulumi processes this process started for a stack, found in /proc, so a worker
that lost its stack's lock can stop its own pulumi at once; and the provider plugins a
killed pulumi left behind.

The wrapper of stacks.workspace execs pulumi (nice and setpriv exec too), so the child
process is pulumi itself, with `--stack NAME` among its arguments (stacks.oneshot names
the stack on every command). Linux only, as setpriv is.

A provider plugin does not exit when the pulumi that started it is killed: it is
reparented and serves nobody, some 120 MB, for good (seen after every `kill -9` of a
worker and every lost stack lock). So killing a pulumi kills its descendants first, and
`reap_orphaned_plugins` removes plugins of our PULUMI_HOME whose parent is no longer a
pulumi (a worker killed mid-update takes its pulumi with it through the wrapper's
parent-death signal, but the plugins stay).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

PROC = Path("/proc")


def _parent_of(pid: str) -> int | None:
    try:
        stat = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def _stack_of(pid: str) -> str | None:
    try:
        argv = (PROC / pid / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    with contextlib.suppress(ValueError, IndexError):
        return argv[argv.index(b"--stack") + 1].decode()
    return None


def pulumi_children(stack: str, parents: dict[int, int] | None = None) -> list[int]:
    """Pids of this process's children running pulumi for `stack`."""
    me = os.getpid()
    parents = _parents() if parents is None else parents
    return [pid for pid, parent in parents.items() if parent == me and _stack_of(str(pid)) == stack]


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process now."""
    found = {}
    for entry in PROC.iterdir() if PROC.is_dir() else []:
        if entry.name.isdigit() and (parent := _parent_of(entry.name)) is not None:
            found[int(entry.name)] = parent
    return found


def descendants(pid: int, parents: dict[int, int] | None = None) -> list[int]:
    """Every process below `pid`, children before their own children."""
    parents = _parents() if parents is None else parents
    below: list[int] = []
    frontier = [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        below += children
        frontier = children
    return below


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def kill_pulumi(stack: str) -> list[int]:
    """SIGKILLs them with their provider plugins (a pulumi asked to stop nicely
    finishes its current steps first, which is what must not happen once another worker
    may take the stack over). Answers the pids killed."""
    parents = _parents()
    pids = pulumi_children(stack, parents)
    killed = []
    for pid in pids:
        tree = [*descendants(pid, parents), pid]
        _kill(tree)
        killed += tree
    return killed


def _exe(pid: int) -> Path | None:
    try:
        return Path(os.readlink(PROC / str(pid) / "exe"))
    except OSError:
        return None


def reap_orphaned_plugins(pulumi_home: Path) -> list[int]:
    """SIGKILLs the plugins run from `pulumi_home/plugins` whose parent is not a pulumi
    process any more (it was killed; the plugin was reparented). Any such plugin is
    garbage, whichever process on this host started its pulumi. Answers the pids."""
    plugins = (pulumi_home / "plugins").resolve()
    orphans = []
    for pid, parent in _parents().items():
        exe = _exe(pid)
        if exe is None or not exe.is_relative_to(plugins):
            continue
        parent_exe = _exe(parent)
        if parent_exe is None or parent_exe.name != "pulumi":
            orphans.append(pid)
    _kill(orphans)
    return orphans
