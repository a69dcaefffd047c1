"""Carrying out one claimed batch: the operations queued on one deployment, applied by
one Pulumi update (or a destroy), the outcome recorded under the claim's token.

A batch is a create or a delete alone, or a run of deltas (config, restart, rollback,
auto-update...) that waited behind a running operation: they compose in the order
they were accepted onto the spec of record, so fifty config writes cost one update
and the final config is the last write. Each operation of the batch is finished with
what happened to it and which update applied it.

Every write of the outcome is fenced: a worker presumed dead, whose operations
another worker has re-run, finds its claim gone and writes nothing.

"No change" is judged against what the last successful update applied (the config of
record, which only a success replaces), and only while the stack is known to hold it:
after an interrupted or failed update the cluster may hold anything, so the target is
applied again even when it equals the record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.orm import Session, sessionmaker

from persistence import operations as ops
from persistence import revisions, workers
from persistence.base import utcnow
from persistence.billing import record_billing_event
from persistence.enums import DeploymentStatus, OperationKind
from persistence.models import Deployment, Operation
from programs.describe import describe_change
from programs.spec import DeploymentSpec
from programs.templates import load_catalog
from stacks import drift_runs, engine, locks, redrive, sealing, stackconfig
from stacks.changes import Change, apply_change, with_placement
from stacks.progress import BatchProgress, Publish
from stacks.settings import Settings
from stacks.stacklock import Held

log = logging.getLogger("shipstack.runner")
MESSAGE_LIMIT = 1000
APPLY_AGAIN_WHY = "the last update did not finish"
APPLY_AGAIN = f"apply the spec of record again: {APPLY_AGAIN_WHY}"

OnFailed = Callable[[str, str, dict[str, Any], str], object]


class ClaimLost(RuntimeError):
    """Another worker re-ran this claim's operations: write nothing more."""


class Plan(msgspec.Struct, frozen=True):
    """What one update will apply: the target spec, its revision message, and per
    operation what becomes of it."""

    target: DeploymentSpec | None  # None: nothing to apply
    message: str
    notes: dict[str, str]  # operation id -> its own message ("no change", "skipped: ...")


class Executor:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        publish: Publish,
        on_failed: OnFailed | None,
        *,
        worker_id: str,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.publish = publish
        self.on_failed = on_failed
        self.worker_id = worker_id

    # --- the batch -------------------------------------------------------------

    def run(self, batch: list[Operation], token: str, held: Held) -> bool:
        """Carries the batch out under its stack's lock `held`; False when it went back
        to the queue instead (the stack is still busy elsewhere, or the lock was lost)."""
        leader = batch[0]
        progress = BatchProgress(self.sessions, self.publish, [op.id for op in batch], token)
        payloads = [dict(op.payload or {}) for op in batch]
        try:
            payloads = self._unsealed(payloads)
            row = self._row(leader)
            config = row.stack_config if row is not None else None
            # A drift check holds no lock and leaves nothing pending; and recovery's
            # refresh would accept into the state the very drift it is to find.
            if payloads[0].get("recover") and leader.kind != OperationKind.DRIFT_CHECK:
                dead = self._holder_dead(payloads[0].get("interrupted_by"))
                engine.recover(self.settings, leader.deployment_name, config, holder_dead=dead)
            if leader.kind == OperationKind.DELETE:
                self._delete(leader, token, config, progress)
            elif leader.kind == OperationKind.DRIFT_CHECK:
                message, result = drift_runs.check(self.settings, self.sessions, leader, config, progress.on_event)
                with self.sessions() as s, s.begin():
                    if not ops.finish(s, leader.id, token, ok=True, message=message, result=result,
                                      progress=progress.items):  # fmt: skip
                        raise ClaimLost(leader.id)
            else:
                self._apply(batch, payloads, token, row, progress)
        except ClaimLost:
            log.warning("operation %s was re-run by another worker; its outcome here is dropped", leader.id)
        except locks.StackBusy:
            with self.sessions() as s, s.begin():
                ops.unclaim(s, [op.id for op in batch], token)
            return False
        except Exception as exc:
            if held.lost:  # pulumi was stopped because another worker may take the stack over
                self._interrupted(batch, token)
                return False
            if isinstance(exc, _UpdateFailed):
                self._failed(batch, payloads, token, exc.error, progress, exc.update)
            else:
                self._failed(batch, payloads, token, exc, progress)
        return True

    def _holder_dead(self, holder: str | None) -> bool:
        """Whether the worker that ran an interrupted operation is dead: ourselves (we
        hold the stack's lock, so no pulumi of ours runs on it), or its lease expired."""
        if holder == self.worker_id:
            return True
        with self.sessions() as s:
            return not workers.is_alive(s, holder)

    def _interrupted(self, batch: list[Operation], token: str) -> None:
        """Our lock on the stack was lost mid-run and its pulumi killed: the batch is
        queued again to resume (by whoever holds the stack next), fenced by our claim."""
        log.warning("lost the lock of stack %s while running it; queued again", batch[0].deployment_name)
        with self.sessions() as s, s.begin():
            if not ops.holds(s, [op.id for op in batch], token):
                return  # already re-driven by another worker
            for op in batch:
                fresh = s.get(Operation, op.id, populate_existing=True)
                if fresh is not None:
                    redrive.requeue_interrupted(s, fresh, by=self.worker_id, token=token)

    def _unsealed(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The payloads with their env values opened; a payload sealed under another
        passphrase fails the batch (it could never run anywhere with this one)."""
        try:
            return [sealing.unseal(p, self.settings.engine.passphrase) for p in payloads]
        except stackconfig.StackConfigError as exc:
            raise engine.EngineError(
                f"the env values queued with this operation cannot be opened ({exc}): they were sealed under "
                "another PULUMI_CONFIG_PASSPHRASE"
            ) from None

    def _row(self, op: Operation) -> Deployment | None:
        with self.sessions() as s:
            if op.deployment_id is not None:
                return s.get(Deployment, op.deployment_id)
            return s.query(Deployment).filter_by(name=op.deployment_name).one_or_none()

    def _apply(
        self,
        batch: list[Operation],
        payloads: list[dict[str, Any]],
        token: str,
        row: Deployment | None,
        progress: BatchProgress,
    ) -> None:
        leader = batch[0]
        if row is None:
            raise engine.EngineError(f"deployment {leader.deployment_name} no longer exists")
        create = leader.kind == OperationKind.CREATE
        reconcile = leader.kind == OperationKind.RECONCILE
        current = None if create else engine.spec_of(row.stack_config, self.settings.engine.passphrase)
        if reconcile:
            if current is None:
                raise engine.EngineError(f"deployment {leader.deployment_name} has no configuration yet")
            message = drift_runs.reconcile_message(self.sessions, row.id)
            plan = Plan(target=self._placed(current), message=message, notes={})
        else:
            holds_record = not payloads[0].get("recover") and self._last_update_succeeded(row.id)
            plan = self.plan(batch, payloads, current, row.id, applied=holds_record)
        if plan.target is None:
            self._finish_unchanged(batch, token, plan, progress, row.id)
            return
        self._set_status(row.id, DeploymentStatus.PROVISIONING, plan.message)
        config = engine.render_config(self.settings, plan.target, row.stack_config)
        update = _Update(deployment_id=row.id, message=plan.message, config=config, operation_id=leader.id)
        try:
            applied = engine.apply(
                self.settings, plan.target, plan.message, progress.on_event, config=config, create=create,
                refresh=reconcile,
            )  # fmt: skip
        except engine.EngineError as exc:
            raise _UpdateFailed(update, exc) from exc
        result: dict[str, Any] = {"changed": applied.changed, "changes": applied.changes, "appliedBy": leader.id}
        if reconcile:  # what is left after it, on the record before the operation ends
            result["drifted"] = self._check_after_reconcile(leader, applied.config)
        with self.sessions() as s, s.begin():
            self._finish_all(s, batch, token, plan, result, progress.items)
            update.record(s, "succeeded", applied.changes)
            dep = s.get(Deployment, row.id)
            if dep is not None:
                dep.stack_config = applied.config
                dep.revision = (dep.revision or 0) + 1
                dep.image = plan.target.image
                dep.visibility = plan.target.visibility
                dep.ingresses = [msgspec.to_builtins(i) for i in applied.ingresses]
                if dep.status != DeploymentStatus.DELETING:  # a delete accepted meanwhile wins
                    dep.status = DeploymentStatus.READY
                    dep.status_message = None
                    dep.last_error = None

    def _check_after_reconcile(self, leader: Operation, config: str) -> bool | None:
        """Whether drift is left after a reconcile (None: the check failed; the
        reconcile itself succeeded and the drift record says what went wrong)."""
        try:
            report = drift_runs.recorded_check(self.settings, self.sessions, leader, config, None)
        except Exception:
            log.warning("the drift check after reconciling %s failed", leader.deployment_name, exc_info=True)
            return None
        return bool(report.objects)

    def _last_update_succeeded(self, deployment_id: int) -> bool:
        with self.sessions() as s:
            last = revisions.latest(s, deployment_id)
        return last is None or last.result == "succeeded"

    def plan(
        self,
        batch: list[Operation],
        payloads: list[dict[str, Any]],
        current: DeploymentSpec | None,
        row_id: int,
        *,
        applied: bool = True,
    ) -> Plan:
        """The spec after every operation of the batch, in order; a create carries its
        whole spec (validated by the API). `applied`: the stack is known to hold
        `current` (the last update succeeded and none was interrupted since); only then
        may a target equal to it skip the update."""
        if current is None:
            if "spec" not in payloads[0]:
                raise engine.EngineError(f"deployment {batch[0].deployment_name} has no configuration yet")
            target = self._placed(msgspec.convert(payloads[0]["spec"], DeploymentSpec))
            return Plan(target=target, message=describe_change(None, target), notes={})
        spec = current
        notes: dict[str, str] = {}
        messages: list[str] = []
        for op, payload in zip(batch, payloads, strict=True):
            change = msgspec.convert(payload.get("change", {}), Change)
            before = spec
            if change.rollback_version is not None:
                spec = self._placed(self._revision_spec(row_id, change.rollback_version))
                note = f"rollback to revision {change.rollback_version}: {describe_change(before, spec)}"
            else:
                if op.kind == OperationKind.AUTO_UPDATE:
                    expected = (payload.get("auto_update") or {}).get("expect_image", spec.image)
                    if expected != spec.image:  # the spec changed after the poll decided
                        notes[op.id] = f"skipped: the image is now {spec.image}, not {expected}"
                        continue
                spec = apply_change(spec, change, load_catalog().get(spec.template))
                note = (
                    op.message if op.kind == OperationKind.AUTO_UPDATE and op.message else describe_change(before, spec)
                )
            runs = spec != before
            if not runs and change.rollback_version is not None and not applied:
                # The stack may still hold what the failed update left: the rollback
                # runs, and history must say it was one.
                note = f"rollback to revision {change.rollback_version}: apply its spec again ({APPLY_AGAIN_WHY})"
                runs = True
            notes[op.id] = note if runs else "no change: the spec already matches"
            if runs:
                messages.append(note)
        target = self._placed(spec)
        if target == current and applied:
            return Plan(target=None, message="no change: the spec already matches", notes=notes)
        message = messages[0] if len(messages) == 1 else f"{len(messages)} changes: " + "; ".join(messages)
        if not messages:
            # The placement alone moved (the operator's settings), or the stack must be
            # brought back to the spec of record.
            message = describe_change(current, target) if target != current else APPLY_AGAIN
        return Plan(target=target, message=message[:MESSAGE_LIMIT], notes=notes)

    def _revision_spec(self, deployment_id: int, number: int) -> DeploymentSpec:
        """The exact spec revision `number` ran with (secrets decrypted)."""
        with self.sessions() as s:
            revision = revisions.get(s, deployment_id, number)
        if revision is None:
            raise engine.EngineError(f"revision {number} does not exist")
        spec = engine.spec_of(revision.config, self.settings.engine.passphrase)
        if spec is None:
            raise engine.EngineError(f"revision {number} holds no spec")
        return spec

    def _placed(self, spec: DeploymentSpec) -> DeploymentSpec:
        """Where and how the service deploys now (domain, ingress, the namespace's
        confinement) wins over what the spec recorded."""
        service = self.settings.service
        return with_placement(spec, service.base_domain, service.ingress_controller, self.settings.tenancy)

    def _delete(self, op: Operation, token: str, config: str | None, progress: BatchProgress) -> None:
        engine.destroy(self.settings, op.deployment_name, config, progress.on_event)
        with self.sessions() as s, s.begin():
            if not ops.finish(
                s, op.id, token, ok=True, message="deleted", result={"deleted": True}, progress=progress.items
            ):
                raise ClaimLost(op.id)
            dep = s.get(Deployment, op.deployment_id) if op.deployment_id is not None else None
            if dep is not None:
                record_billing_event(
                    s, kind="deployment.deleted", user_id=dep.owner_user_id, team_id=dep.team_id,
                    deployment_name=dep.name, template=dep.template,
                )  # fmt: skip
                s.delete(dep)
            ops.fail_queued(s, op.deployment_name, "the deployment was deleted")

    # --- outcomes ---------------------------------------------------------------

    def _finish_all(
        self, s: Session, batch: list[Operation], token: str, plan: Plan, result: dict[str, Any], items: list[Any]
    ) -> None:
        for op in batch:
            message = plan.notes.get(op.id, plan.message)
            if not ops.finish(s, op.id, token, ok=True, message=message, result=result, progress=items):
                raise ClaimLost(op.id)

    def _finish_unchanged(
        self, batch: list[Operation], token: str, plan: Plan, progress: BatchProgress, deployment_id: int
    ) -> None:
        """Nothing to apply, and the stack holds the spec of record: the deployment is
        what its last update made it, Ready (whatever an earlier failure before any
        update, a missing rollback revision say, had said)."""
        with self.sessions() as s, s.begin():
            self._finish_all(s, batch, token, plan, {"changed": False}, progress.items)
            dep = s.get(Deployment, deployment_id)
            if dep is not None and dep.status != DeploymentStatus.DELETING:
                dep.status = DeploymentStatus.READY
                dep.status_message = dep.last_error = None

    def _failed(
        self,
        batch: list[Operation],
        payloads: list[dict[str, Any]],
        token: str,
        exc: Exception,
        progress: BatchProgress,
        update: _Update | None = None,
    ) -> None:
        leader = batch[0]
        error = str(exc) if isinstance(exc, engine.EngineError) else f"{type(exc).__name__}: {exc}"
        log.warning("operation %s (%s %s) failed: %s", leader.id, leader.kind, leader.deployment_name, error)
        with self.sessions() as s, s.begin():
            for op in batch:
                failed = f"{op.message or op.kind}: failed"
                if not ops.finish(s, op.id, token, ok=False, message=failed, error=error, progress=progress.items):
                    log.warning("operation %s was re-run by another worker; its failure here is dropped", op.id)
                    s.rollback()
                    return
            if update is not None:  # the update ran and failed: a revision of its own
                update.record(s, "failed", {})
            dep = s.get(Deployment, leader.deployment_id) if leader.deployment_id is not None else None
            # A failed drift check says nothing about the deployment itself (its result keeps the error).
            if dep is not None and leader.kind != OperationKind.DRIFT_CHECK:
                dep.last_error = error
                # A failed delete stays Deleting, so it is retried; a delete accepted
                # while an update failed is not overridden either.
                if dep.status != DeploymentStatus.DELETING:
                    dep.status = DeploymentStatus.ERROR
                dep.status_message = error
        if self.on_failed is not None:
            for op, payload in zip(batch, payloads, strict=True):
                try:
                    self.on_failed(op.kind, op.deployment_name, payload, error)
                except Exception:
                    log.exception("the failure hook of operation %s failed", op.id)

    def _set_status(self, deployment_id: int, status: str, message: str | None) -> None:
        with self.sessions() as s, s.begin():
            dep = s.get(Deployment, deployment_id)
            if dep is not None and dep.status != DeploymentStatus.DELETING:
                dep.status = status
                dep.status_message = message


class _Update(msgspec.Struct, kw_only=True):
    """An update about to run, to be recorded as a revision whatever its result."""

    deployment_id: int
    message: str
    config: str
    operation_id: str
    started_at: datetime = msgspec.field(default_factory=utcnow)

    def record(self, s: Session, result: str, changes: dict[str, int]) -> None:
        revisions.record(
            s, self.deployment_id, result=result, message=self.message, config=self.config,
            resource_changes=changes, operation_id=self.operation_id, started_at=self.started_at,
        )  # fmt: skip


class _UpdateFailed(Exception):
    def __init__(self, update: _Update, error: Exception) -> None:
        super().__init__(str(error))
        self.update = update
        self.error = error
