"""`Idempotency-Key` on writes: a retried request with the same key gets the
first response again and starts nothing new.

The key is scoped to the user. The same key with a different request (method,
path or body) is a client bug and answers 409 rather than guessing which one
was meant. Records older than a day are ignored and pruned.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.errors import ApiError
from persistence.base import utcnow
from persistence.models import IdempotencyKey

HEADER = "Idempotency-Key"
KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()


class Replay(Exception):
    """The first response to this key, to be sent again as is."""

    def __init__(self, status_code: int, body: bytes) -> None:
        super().__init__("idempotent replay")
        self.status_code = status_code
        self.body = body


def check(db: Session, user_id: int, key: str | None, method: str, path: str, body: bytes) -> str | None:
    """Raises Replay for a repeated request; returns the hash to store, or None without a key."""
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ApiError(400, "bad_request", f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters")
    digest = request_hash(method, path, body)
    db.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - KEEP_FOR))
    row = db.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key))
    if row is None:
        return digest
    if row.request_hash != digest:
        raise ApiError(409, "idempotency_key_reused", f"{HEADER} was already used for a different request")
    if row.status_code is None:
        raise ApiError(409, "conflict", "The first request with this Idempotency-Key is still being processed")
    raise Replay(row.status_code, row.response_body or b"")


def remember(
    db: Session, user_id: int, key: str, digest: str, method: str, path: str, status: int, body: bytes
) -> None:
    """Stores the response in the same transaction as the change it answers."""
    db.add(
        IdempotencyKey(
            key=key,
            user_id=user_id,
            method=method,
            path=path,
            request_hash=digest,
            status_code=status,
            response_body=body,
        )
    )
    try:
        db.flush()
    except IntegrityError:
        raise ApiError(409, "conflict", "A concurrent request used the same Idempotency-Key") from None
