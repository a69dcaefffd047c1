"""`Idempotency-Key` on writes: a retried request with the same key gets the
first response again and starts nothing new.

The key is scoped to the user, and a replay needs the very same request: method,
path, body, the credential that sent it (an API key, or a browser session) and the
team context it acted in. Anything else with a used key is a client bug (or
someone else's credential of the same user) and answers 409 rather than guessing
which one was meant. Records older than a day are ignored and pruned.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.auth.principal import Principal
from api.errors import Conflict, Invalid
from persistence.base import utcnow
from persistence.models import IdempotencyKey

HEADER = "Idempotency-Key"
KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class IdempotentRequest(msgspec.Struct, frozen=True):
    """What a write must match to be replayed."""

    key: str
    method: str
    path: str
    body: bytes
    team_id: int | None

    def fingerprint(self, principal: Principal) -> str:
        credential = f"key:{principal.key_id}" if principal.via == "key" else f"session:{principal.session_id}"
        parts = [self.method, self.path, credential, str(self.team_id), ""]
        return hashlib.sha256("\0".join(parts).encode() + self.body).hexdigest()


class Replay(Exception):
    """The first response to this key, to be sent again as is."""

    def __init__(self, status_code: int, body: bytes) -> None:
        super().__init__("idempotent replay")
        self.status_code = status_code
        self.body = body


def check(db: Session, principal: Principal, request: IdempotentRequest) -> str:
    """Raises Replay for a repeated request; returns the fingerprint to store."""
    if not request.key or len(request.key) > MAX_KEY_LENGTH:
        raise Invalid(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters", "bad_request")
    digest = request.fingerprint(principal)
    db.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - KEEP_FOR))
    row = db.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == principal.user_id, IdempotencyKey.key == request.key)
    )
    if row is None:
        return digest
    if row.request_hash != digest:
        raise Conflict(
            f"{HEADER} was already used for a different request (or by another credential or team)",
            "idempotency_key_reused",
        )
    if row.status_code is None:
        raise Conflict("The first request with this Idempotency-Key is still being processed")
    raise Replay(row.status_code, row.response_body or b"")


def remember(
    db: Session, principal: Principal, request: IdempotentRequest, digest: str, status: int, body: bytes
) -> None:
    """Stores the response in the same transaction as the change it answers."""
    db.add(
        IdempotencyKey(
            key=request.key,
            user_id=principal.user_id,
            method=request.method,
            path=request.path,
            request_hash=digest,
            status_code=status,
            response_body=body,
        )
    )
    try:
        db.flush()
    except IntegrityError:
        raise Conflict("A concurrent request used the same Idempotency-Key") from None
