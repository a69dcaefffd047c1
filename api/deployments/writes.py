"""How every write runs: one transaction with its idempotency record, then the
operation runner is woken.

Writes validate first (bad input never reaches Pulumi), then in one transaction
record the deployment row and a queued operation, and answer at once; the runner
carries the operation out.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from sqlalchemy.orm import Session, sessionmaker

from api.auth.guards import need
from api.auth.principal import WRITE, Principal
from api.deployments import idempotency
from api.deployments.idempotency import IdempotentRequest

Action = Callable[[Session], tuple[int, msgspec.Struct]]


class WriteResult(msgspec.Struct, frozen=True):
    status: int
    body: bytes  # the JSON answer, exactly as a replay will send it again


def submit(
    writes: sessionmaker[Session],
    notify: Callable[[], None],
    principal: Principal,
    action: Action,
    replay: IdempotentRequest | None = None,
) -> WriteResult:
    """Runs `action` in one write transaction, honouring an Idempotency-Key, then
    wakes the runner. `writes` takes the write lock at BEGIN on SQLite, so the
    action's read-then-write (name checks, tier counts) cannot race."""
    need(principal, WRITE)
    with writes() as db, db.begin():
        digest = None
        if replay is not None:
            try:
                digest = idempotency.check(db, principal, replay)
            except idempotency.Replay as first:
                return WriteResult(status=first.status_code, body=first.body)
        status, out = action(db)
        encoded = msgspec.json.encode(out)
        if replay is not None and digest is not None:
            idempotency.remember(db, principal, replay, digest, status, encoded)
    notify()
    return WriteResult(status=status, body=encoded)
