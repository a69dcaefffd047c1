"""The pulumi processes this process started for a stack, found in /proc, so a worker
that lost its stack's lock can stop its own pulumi at once.

The wrapper of stacks.workspace execs pulumi (nice and setpriv exec too), so the child
process is pulumi itself, with `--stack NAME` among its arguments (stacks.oneshot names
the stack on every command). Linux only, as setpriv is.
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


def pulumi_children(stack: str) -> list[int]:
    """Pids of this process's children running pulumi for `stack`."""
    me = os.getpid()
    found = []
    for entry in PROC.iterdir() if PROC.is_dir() else []:
        if entry.name.isdigit() and _parent_of(entry.name) == me and _stack_of(entry.name) == stack:
            found.append(int(entry.name))
    return found


def kill_pulumi(stack: str) -> list[int]:
    """SIGKILLs them (a pulumi asked to stop nicely finishes its current steps first,
    which is what must not happen once another worker may take the stack over); its
    provider plugins exit when their engine goes. Answers the pids killed."""
    pids = pulumi_children(stack)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids
