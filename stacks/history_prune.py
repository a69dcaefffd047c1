"""Keeps a stack's history in the backend short: the database holds every revision
with the config it ran (table `revisions`), so the backend's own history (each update
writes `.pulumi/history/<project>/<stack>/<stack>-<nanos>.history.json` and a full
`.checkpoint.json` copy of the state beside it, never pruned by Pulumi) needs only its
newest KEEP updates, for a person running `pulumi stack history`. Checkpoint backups
(`.pulumi/backups/...`) are no longer written (stacks.workspace turns them off); any
older ones are pruned the same way.

Run after each successful update, under the stack's lock, on the backends shipstack
can list (file://, postgres://); `bench/history_growth.py` measures why.
"""

from __future__ import annotations

import logging

from stacks import backend_store
from stacks.settings import Settings

log = logging.getLogger("shipstack.history")
KEEP = 10


def _stamp(key: str) -> int:
    """The update's time in a history or backup key: `<stack>-<nanos>.history.json`,
    `<stack>-<nanos>.checkpoint.json`, `<stack>.<nanos>.json`."""
    base = key.rsplit("/", 1)[-1]
    for part in reversed(base.replace("-", ".").split(".")):
        if part.isdigit():
            return int(part)
    return -1


def older_than_newest(keys: list[str], keep: int) -> list[str]:
    """The keys of all but the newest `keep` updates (an update's files share its time)."""
    stamps = sorted({_stamp(k) for k in keys if _stamp(k) >= 0}, reverse=True)
    kept = set(stamps[:keep])
    return [k for k in keys if _stamp(k) >= 0 and _stamp(k) not in kept]


def prune(settings: Settings, name: str, keep: int = KEEP) -> int:
    """Deletes the stack's history and backups beyond the newest `keep` updates; answers
    how many objects went (0 on a backend shipstack cannot list)."""
    store = backend_store.store_for(settings.engine.backend_url)
    if store is None:
        return 0
    gone = 0
    for prefix in (backend_store.history_prefix(name), backend_store.backups_prefix(name)):
        old = older_than_newest(store.keys(prefix), keep)
        store.delete(old)
        gone += len(old)
    if gone:
        log.info("pruned %d history objects of stack %s", gone, name)
    return gone
