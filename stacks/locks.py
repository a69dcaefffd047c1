"""The backend's own stack locks (Pulumi's DIY lock: a `.pulumi/locks/...` file, or a
row of that name in the postgres:// backend's table), which a killed pulumi leaves
behind and which never expire by themselves.

shipstack serialises pulumi per stack itself (stacks.stacklock), so these locks are a
second line of defence; what matters is removing a left-over one only when its holder
is proven dead. Every pulumi shipstack runs on a stack runs under that stack's lock of
stacks.stacklock, for a claimed operation, so a left-over lock is one of two kinds:

* it appeared while our own pulumi ran and that pulumi has exited (killed, crashed):
  ours, dead, removed at once (`cleanup_after`);
* it was there before we took the stack: left by the worker that last ran it, whose
  pulumi is dead once that worker's lease has expired and our lock is free (we hold
  it). A worker cut off from the database stops its pulumi as soon as its lock session
  dies (stacks.stacklock), well within its lease. The caller judges the lease
  (`clear_left_over(holder_dead=...)`); a live holder means the operation waits.

Host names and pids in the lock's content are never used: a pid says nothing about
another host, and containers reuse both. On backends shipstack cannot list (s3://,
gs://, azblob://) a left-over lock of a dead holder is removed with `pulumi cancel`
(every lock of the stack), and locks of our own crashed pulumi wait for that too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from pulumi import automation as auto

from programs.deployment import program_from_config
from stacks import backend_store, workspace
from stacks.events import EngineError
from stacks.oneshot import OneShotStack
from stacks.settings import Settings

log = logging.getLogger("shipstack.locks")


class StackBusy(EngineError):
    """The stack's backend lock belongs to a worker that may still be running."""


def held(settings: Settings, name: str) -> list[str] | None:
    """Keys of the stack's backend locks; None on a backend shipstack cannot list."""
    store = backend_store.store_for(settings.engine.backend_url)
    return None if store is None else store.keys(backend_store.lock_prefix(name))


def clear_left_over(settings: Settings, name: str, *, holder_dead: bool) -> None:
    """Before running a stack whose last operation was interrupted (while we hold its
    stacklock): removes the locks its last worker left, if that worker is dead, and
    raises StackBusy if it may still be running."""
    store = backend_store.store_for(settings.engine.backend_url)
    keys = store.keys(backend_store.lock_prefix(name)) if store is not None else None
    if keys == []:
        return
    if not holder_dead:
        raise StackBusy(f"stack {name} is locked by a pulumi of a worker that is still alive; waiting for it")
    if store is None or keys is None:
        with contextlib.suppress(auto.errors.CommandError):
            OneShotStack(name, workspace.shared(settings, program_from_config)).cancel()
        return
    log.warning("removing %d lock(s) of stack %s left by a dead worker", len(keys), name)
    store.delete(keys)


@contextlib.contextmanager
def cleanup_after(settings: Settings, name: str) -> Iterator[None]:
    """Around one pulumi command on `name`, run while we hold its stacklock: if the
    command fails (pulumi exited, whatever killed it), the locks that appeared while it
    ran are its own, and it is gone: they are removed."""
    store = backend_store.store_for(settings.engine.backend_url)
    before = set(store.keys(backend_store.lock_prefix(name))) if store is not None else set()
    try:
        yield
    except BaseException:
        if store is not None:
            try:
                left = [k for k in store.keys(backend_store.lock_prefix(name)) if k not in before]
                if left:
                    log.warning("removing %d lock(s) our own pulumi left on stack %s", len(left), name)
                    store.delete(left)
            except Exception:
                log.exception("could not remove the locks our pulumi left on stack %s", name)
        raise
