"""The engine's progress of a running batch: each event published live to every
operation of the batch (in-process listeners: event streams served by this process)
and saved, the last PROGRESS_KEEP, on the batch's first operation about once a second,
for streams served by other processes and for reading after the fact."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from persistence import operations as ops

log = logging.getLogger("shipstack.runner")
PROGRESS_KEEP = 300  # events kept per operation in the database
FLUSH_EVERY_S = 1.0

Publish = Callable[[str, dict[str, Any] | None], None]


class BatchProgress:
    def __init__(self, sessions: sessionmaker[Session], publish: Publish, op_ids: list[str], token: str) -> None:
        self.sessions = sessions
        self.publish = publish
        self.ids = op_ids
        self.token = token  # saving is fenced by the claim, as every write of the outcome
        self.items: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def on_event(self, item: dict[str, Any]) -> None:
        self.items.append(item)
        del self.items[:-PROGRESS_KEEP]
        for op_id in self.ids:
            self.publish(op_id, item)
        if time.monotonic() - self.last_flush > FLUSH_EVERY_S:
            self.last_flush = time.monotonic()
            try:
                with self.sessions() as s, s.begin():
                    ops.save_progress(s, self.ids[0], self.token, list(self.items))
            except Exception:
                log.exception("saving progress failed")
