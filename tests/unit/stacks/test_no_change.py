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


@pytest.mark.parametrize(("applied", "runs"), [(False, True), (True, False)])
def test_a_rollback_to_the_record_after_a_failed_update_runs_and_says_so(
    executor: Executor, monkeypatch: pytest.MonkeyPatch, applied: bool, runs: bool
) -> None:
    """An auto-update failed and left the record on the good spec; rolling back to the
    revision that holds it must still run (the stack may hold the bad image) and be
    named a rollback in history."""
    current = executor._placed(DeploymentSpec(name="web", template="nginx", env={"A": "1"}, base_domain="x.test"))
    monkeypatch.setattr(executor, "_revision_spec", lambda _row, _number: current)
    batch = [Operation(id="op0", deployment_name="web", kind=OperationKind.ROLLBACK, message="")]
    plan = executor.plan(batch, [{"change": {"rollback_version": 3}}], current, 1, applied=applied)
    assert (plan.target is not None) is runs
    assert plan.message.startswith("rollback to revision 3") is runs
    assert plan.notes["op0"].startswith("rollback to revision 3") is runs
