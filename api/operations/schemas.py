"""Response bodies of the operation routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class OperationOut(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    deployment: str
    kind: str
    status: str
    message: str
    createdAt: datetime
    startedAt: datetime | None = None
    finishedAt: datetime | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    progress: list[dict[str, Any]] = []


class OperationsResponse(msgspec.Struct, frozen=True):
    operations: list[OperationOut]
