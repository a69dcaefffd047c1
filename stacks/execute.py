"""Carrying out one claimed batch: the operations queued on one deployment, applied by
one Pulumi update (or a destroy), the outcome recorded under the claim's token.

A batch is a create or a delete alone, or a run of deltas (config, restart, rollback,
auto-update...) that waited behind a running operation: they compose in the order
they were accepted onto the spec of record, so fifty config writes cost one update
and the final config is the last write. Each operation of the batch is finished with
what happened to it and which update applied it.

Every write of the outcome is fenced: a worker presumed dead, whose operations
another worker has re-run, finds its claim gone and writes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.orm import Session, sessionmaker

from persistence import operations as ops
from persistence import revisions
from persistence.base import utcnow
from persistence.billing import record_billing_event
from persistence.enums import DeploymentStatus, OperationKind
from persistence.models import Deployment, Operation
from programs.describe import describe_change
from programs.spec import DeploymentSpec
from programs.templates import load_catalog
from stacks import drift_runs, engine, sealing, stackconfig
from stacks.changes import Change, apply_change, with_placement
from stacks.settings import Settings

log = logging.getLogger("shipstack.runner")
PROGRESS_KEEP = 300  # events kept per operation in the database
FLUSH_EVERY_S = 1.0
MESSAGE_LIMIT = 1000

Publish = Callable[[str, dict[str, Any] | None], None]
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
        self, settings: Settings, sessions: sessionmaker[Session], publish: Publish, on_failed: OnFailed | None
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.publish = publish
        self.on_failed = on_failed

    # --- the batch -------------------------------------------------------------

    def run(self, batch: list[Operation], token: str) -> None:
        leader = batch[0]
        progress = _Progress(self, batch, token)
        payloads = [dict(op.payload or {}) for op in batch]
        try:
            payloads = self._unsealed(payloads)
            row = self._row(leader)
            config = row.stack_config if row is not None else None
            # A drift check holds no lock and leaves nothing pending; and recovery's
            # refresh would accept into the state the very drift it is to find.
            if payloads[0].get("recover") and leader.kind != OperationKind.DRIFT_CHECK:
                engine.recover(self.settings, leader.deployment_name, config)
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
        except _UpdateFailed as failed:
            self._failed(batch, payloads, token, failed.error, progress, failed.update)
        except Exception as exc:
            self._failed(batch, payloads, token, exc, progress)

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
        progress: _Progress,
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
            plan = self.plan(batch, payloads, current, row.id)
        if plan.target is None:
            self._finish_unchanged(batch, token, plan, progress)
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

    def plan(
        self, batch: list[Operation], payloads: list[dict[str, Any]], current: DeploymentSpec | None, row_id: int
    ) -> Plan:
        """The spec after every operation of the batch, in order; a create carries its
        whole spec (validated by the API)."""
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
            notes[op.id] = note if spec != before else "no change: the spec already matches"
            if spec != before:
                messages.append(note)
        target = self._placed(spec)
        if target == current:
            return Plan(target=None, message="no change: the spec already matches", notes=notes)
        message = messages[0] if len(messages) == 1 else f"{len(messages)} changes: " + "; ".join(messages)
        if not messages:
            message = describe_change(current, target)  # the placement alone moved (the operator's settings)
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

    def _delete(self, op: Operation, token: str, config: str | None, progress: _Progress) -> None:
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

    def _finish_unchanged(self, batch: list[Operation], token: str, plan: Plan, progress: _Progress) -> None:
        with self.sessions() as s, s.begin():
            self._finish_all(s, batch, token, plan, {"changed": False}, progress.items)

    def _failed(
        self,
        batch: list[Operation],
        payloads: list[dict[str, Any]],
        token: str,
        exc: Exception,
        progress: _Progress,
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


class _Progress:
    """Engine events of a batch: published live to every operation of it, and saved
    (the last PROGRESS_KEEP) on the leader about once a second."""

    def __init__(self, executor: Executor, batch: list[Operation], token: str) -> None:
        self.executor = executor
        self.ids = [op.id for op in batch]
        self.token = token
        self.items: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def on_event(self, item: dict[str, Any]) -> None:
        self.items.append(item)
        del self.items[:-PROGRESS_KEEP]
        for op_id in self.ids:
            self.executor.publish(op_id, item)
        if time.monotonic() - self.last_flush > FLUSH_EVERY_S:
            self.last_flush = time.monotonic()
            try:
                with self.executor.sessions() as s, s.begin():
                    ops.save_progress(s, self.ids[0], self.token, list(self.items))
            except Exception:
                log.exception("saving progress failed")
