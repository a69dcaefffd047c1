"""Response bodies of the operation routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from api.observe.schemas import EventData


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


class OperationStreamEvent(msgspec.Struct, frozen=True):
    """One event of an operation's stream as an EventSource reads it: an engine
    event (named by its type, `data` the engine's JSON, `id` its sequence number),
    then `end` (`data` an EndEvent, `id` "end")."""

    event: str
    data: EventData
    id: str = ""
