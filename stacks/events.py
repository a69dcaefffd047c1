"""Engine events as shipstack keeps them: a small JSON-able item per event for an
operation's progress, the error diagnostics for lastError, the steps of a preview and
the summary of resource changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from pulumi import automation as auto

OnEvent = Callable[[dict[str, Any]], None]


class Step(msgspec.Struct, frozen=True):
    op: str
    type: str
    name: str
    diffs: list[str] = []


class EngineError(RuntimeError):
    """A Pulumi operation failed; the message is what a user should read."""


def event_item(event: auto.EngineEvent) -> dict[str, Any] | None:
    """A small JSON-able view of an engine event (secrets are already masked)."""
    base = {"sequence": event.sequence, "timestamp": event.timestamp}
    if event.resource_pre_event and not event.resource_pre_event.metadata.type.startswith("pulumi:"):
        m = event.resource_pre_event.metadata
        # Property paths that change ("spec.template.metadata.annotations..."), the
        # detailed diff when the engine computed one, else the top-level keys.
        diffs = sorted(m.detailed_diff) if m.detailed_diff else list(m.diffs or [])
        return base | {"type": "step", "op": str(m.op.value), "resource": m.type, "urn": m.urn, "diffs": diffs}
    if event.res_outputs_event and not event.res_outputs_event.metadata.type.startswith("pulumi:"):
        m = event.res_outputs_event.metadata
        return base | {"type": "done", "op": str(m.op.value), "resource": m.type, "urn": m.urn}
    if event.diagnostic_event and event.diagnostic_event.severity in ("error", "warning", "info"):
        d = event.diagnostic_event
        if d.ephemeral:
            return None
        return base | {"type": "diagnostic", "severity": d.severity, "message": d.message.strip(), "urn": d.urn}
    if event.summary_event:
        s = event.summary_event
        return base | {
            "type": "summary",
            "changes": {str(k): v for k, v in (s.resource_changes or {}).items()},
            "duration_s": s.duration_seconds,
        }
    return None


class Collector:
    """Engine events -> progress callback, and the error diagnostics for lastError."""

    def __init__(self, on_event: OnEvent | None) -> None:
        self.on_event = on_event
        self.errors: list[str] = []
        self.steps: list[Step] = []
        self.changes: dict[str, int] = {}

    def __call__(self, event: auto.EngineEvent) -> None:
        item = event_item(event)
        if item is None:
            return
        if item["type"] == "diagnostic" and item["severity"] == "error":
            self.errors.append(item["message"])
        if item["type"] == "summary":
            self.changes = item["changes"]
        if item["type"] == "step":
            self.steps.append(
                Step(op=item["op"], type=item["resource"], name=item["urn"].rsplit("::", 1)[-1], diffs=item["diffs"])
            )
        if self.on_event is not None:
            self.on_event(item)

    def error(self, exc: Exception) -> EngineError:
        detail = "; ".join(dict.fromkeys(self.errors)) or short(str(exc))
        return EngineError(detail)


def short(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " ..."
