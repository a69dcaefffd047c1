""" "No change" is judged against the last successful update, and only while the stack
is known to hold it (stacks.execute.Executor.plan): after an interrupted or failed
update, a batch that lands on the config of record applies it again."""

from __future__ import annotations

from pathlib import Path

import pytest

from persistence.enums import OperationKind
from persistence.models import Operation
from programs.spec import DeploymentSpec
from stacks.execute import APPLY_AGAIN, Executor
from stacks.settings import Settings


@pytest.fixture
def executor(tmp_path: Path) -> Executor:
    settings = Settings.from_env({"SHIPSTACK_DATA": str(tmp_path / "data")})
    return Executor(settings, None, lambda *_: None, None, worker_id="w1")  # type: ignore[arg-type]


def _ops(*envs: dict[str, str]) -> tuple[list[Operation], list[dict]]:
    batch = [Operation(id=f"op{i}", deployment_name="web", kind=OperationKind.CONFIG, message="")
             for i in range(len(envs))]  # fmt: skip
    return batch, [{"change": {"env": env}} for env in envs]


def test_same_spec_after_a_successful_update_is_no_change(executor: Executor) -> None:
    current = executor._placed(DeploymentSpec(name="web", template="nginx", env={"A": "1"}, base_domain="x.test"))
    batch, payloads = _ops({"A": "1"})
    plan = executor.plan(batch, payloads, current, 1, applied=True)
    assert plan.target is None
    assert plan.message.startswith("no change")


def test_same_spec_after_an_interrupted_update_is_applied_again(executor: Executor) -> None:
    current = executor._placed(DeploymentSpec(name="web", template="nginx", env={"A": "1"}, base_domain="x.test"))
    batch, payloads = _ops({"A": "1"})
    plan = executor.plan(batch, payloads, current, 1, applied=False)
    assert plan.target == current
    assert plan.message == APPLY_AGAIN


def test_a_change_and_its_undo_after_an_interruption_bring_the_record_back(executor: Executor) -> None:
    """The interrupted update set B (and may have reached the cluster); a later write
    removed it again: the record's spec is applied, named by both writes."""
    current = executor._placed(DeploymentSpec(name="web", template="nginx", env={"A": "1"}, base_domain="x.test"))
    batch, payloads = _ops({"A": "1", "B": "2"}, {"A": "1"})
    plan = executor.plan(batch, payloads, current, 1, applied=False)
    assert plan.target == current
    assert not plan.message.startswith("no change")
    assert "B" in plan.notes["op0"] and "B" in plan.notes["op1"]
