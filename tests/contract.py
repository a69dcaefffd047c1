"""Running schemathesis's engine (the one behind `st run`) from a test, and what it found.

`run_schemathesis` loads the served OpenAPI document, runs every phase the pinned
version has (examples, coverage, fuzzing, stateful) with the given config and
returns the counts and the failures, each with the curl command that reproduces
it, so a failing test says what to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from schemathesis.core.result import Ok
from schemathesis.engine import Status, from_schema
from schemathesis.engine import events as ev


@dataclass
class ContractRun:
    operations: int = 0
    requests: int = 0
    checks: int = 0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.operations} operations, {self.requests} requests, {self.checks} checks, "
            f"{len(self.failures)} failures, {len(self.errors)} errors"
        )


def run_schemathesis(
    schema_url: str,
    config: dict[str, Any],
    *,
    select: Callable[[schemathesis.BaseSchema], schemathesis.BaseSchema] = lambda schema: schema,
) -> ContractRun:
    """`config` is what a schemathesis.toml would hold, as a dict; `select` narrows the operations."""
    schema = select(schemathesis.openapi.from_url(schema_url, config=schemathesis.Config.from_dict(config)))
    run = ContractRun(operations=sum(1 for result in schema.get_all_operations() if isinstance(result, Ok)))
    seen: set[str] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, ev.ScenarioFinished):
            recorder = event.recorder
            run.requests += sum(1 for i in recorder.interactions.values() if i.response is not None)
            for nodes in recorder.checks.values():
                run.checks += len(nodes)
                for node in nodes:
                    if node.status != Status.FAILURE or node.failure_info is None:
                        continue
                    failure = node.failure_info.failure
                    text = f"{recorder.label}: {failure.title}: {failure.message}\n  {node.failure_info.code_sample}"
                    key = f"{recorder.label}|{failure.title}|{failure.message}"
                    if key not in seen:
                        seen.add(key)
                        run.failures.append(text)
        elif isinstance(event, ev.NonFatalError):
            run.errors.append(f"{event.label}: {event.info}")
        elif isinstance(event, ev.FatalError):
            run.errors.append(f"fatal: {event.exception!r}")
    return run
