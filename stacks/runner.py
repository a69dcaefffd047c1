"""The operation runner: a bounded pool of worker threads in the service
process that drains the durable operation queue.

Each worker claims one operation (one per deployment at a time), runs it with
the Pulumi engine and records the outcome on both the operation and the
deployment row. Engine events become the operation's progress, kept in the
database (for other processes and after the fact) and pushed to in-process
listeners (for live event streams).

On start the runner first deals with what a killed process left behind:
every operation still marked running by a dead worker has its stack unlocked
and its pending operations cleared, and is queued again to finish; a delete
that failed halfway is retried.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy.orm import Session, sessionmaker

from persistence import operations as ops
from persistence.base import utcnow
from persistence.billing import record_billing_event
from persistence.enums import DeploymentStatus, OperationKind
from persistence.models import Deployment, Operation
from programs.describe import describe_change
from programs.spec import DeploymentSpec
from programs.templates import load_catalog
from stacks import drift_runs, engine
from stacks.changes import Change, apply_change, with_placement
from stacks.settings import Settings

log = logging.getLogger("shipstack.runner")
MAX_ATTEMPTS = 3
PROGRESS_KEEP = 300  # events kept per operation in the database
FLUSH_EVERY_S = 1.0
HEARTBEAT_EVERY_S = 10.0


def _owner_alive(owner: str, me: str) -> bool:
    """Whether the worker that claimed an operation is still alive.

    Owners are "host:pid:nonce". Another host's owner is judged by heartbeat; in
    this process only `me` is alive (an earlier runner here has stopped).
    """
    try:
        host, pid, _ = owner.split(":", 2)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return int(pid) != os.getpid() or owner == me


class Runner:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        workers: int | None = None,
        on_failed: Callable[[str, str, dict[str, Any], str], object] | None = None,
    ) -> None:
        self.settings = settings
        # Called as (kind, deployment, payload, error) after a failure is recorded;
        # the scheduler's automatic rollback of a failed auto-update hangs here, so
        # that stacks never imports scheduler.
        self.on_failed = on_failed
        self.sessions = sessions
        self.workers = workers or settings.service.workers
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, str] = {}  # op id -> deployment name
        self._lock = threading.Lock()
        self._listeners: dict[str, list[queue.SimpleQueue]] = {}

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        self.recover()
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, name=f"shipstack-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        hb = threading.Thread(target=self._heartbeat_loop, name="shipstack-heartbeat", daemon=True)
        hb.start()
        self._threads.append(hb)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    def notify(self) -> None:
        """Wakes a worker now rather than at its next poll."""
        self._wake.set()

    def idle(self) -> bool:
        with self._lock:
            return not self._running

    # --- live progress -----------------------------------------------------

    def subscribe(self, op_id: str) -> queue.SimpleQueue:
        q: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            self._listeners.setdefault(op_id, []).append(q)
        return q

    def unsubscribe(self, op_id: str, q: queue.SimpleQueue) -> None:
        with self._lock:
            listeners = self._listeners.get(op_id, [])
            if q in listeners:
                listeners.remove(q)
            if not listeners:
                self._listeners.pop(op_id, None)

    def _publish(self, op_id: str, item: dict[str, Any] | None) -> None:
        with self._lock:
            listeners = list(self._listeners.get(op_id, []))
        for q in listeners:
            q.put(item)

    # --- recovery ----------------------------------------------------------

    def recover(self) -> None:
        """Re-queues operations a dead worker left running; retries lost deletes."""
        with self.sessions() as s, s.begin():
            stale = ops.interrupted(
                s, owner_alive=lambda o: _owner_alive(o, self.owner), stale_before=utcnow() - ops.STALE_AFTER
            )
            for op in stale:
                payload = dict(op.payload or {})
                attempt = int(payload.get("attempt", 1)) + 1
                if attempt > MAX_ATTEMPTS:
                    reason = f"{op.kind} was interrupted {MAX_ATTEMPTS} times; giving up"
                    ops.finish(s, op.id, ok=False, message=reason, error=reason)
                    self._mark_error(s, op.deployment_name, reason, deleting=op.kind == OperationKind.DELETE)
                    continue
                payload.update(attempt=attempt, recover=True)
                log.warning("operation %s (%s %s) was interrupted; queued again", op.id, op.kind, op.deployment_name)
                ops.requeue(s, op, payload, f"{op.kind} interrupted by a service restart; resuming")
            for dep in ops.deployments_stuck_deleting(s):
                log.warning("deployment %s was left half-deleted; retrying the delete", dep.name)
                ops.enqueue(s, dep, "delete", {}, "retry an interrupted delete")

    # --- workers -----------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                op = self._claim()
            except Exception:
                log.exception("claiming an operation failed")
                op = None
            if op is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self._execute(op)
            except Exception:
                log.exception("operation %s crashed the worker", op.id)
            finally:
                with self._lock:
                    self._running.pop(op.id, None)
                self._publish(op.id, None)

    def _claim(self) -> Operation | None:
        with self.sessions() as s, s.begin():
            with self._lock:
                busy = set(self._running.values())
            op = ops.claim_next(s, self.owner, skip=busy)
            if op is not None:
                with self._lock:
                    self._running[op.id] = op.deployment_name
            return op

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY_S):
            with self._lock:
                ids = list(self._running)
            try:
                with self.sessions() as s, s.begin():
                    ops.heartbeat(s, ids)
            except Exception:
                log.exception("heartbeat failed")

    def _execute(self, op: Operation) -> None:
        payload = dict(op.payload or {})
        progress: list[dict[str, Any]] = []
        last_flush = [time.monotonic()]

        def on_event(item: dict[str, Any]) -> None:
            progress.append(item)
            del progress[:-PROGRESS_KEEP]
            self._publish(op.id, item)
            if time.monotonic() - last_flush[0] > FLUSH_EVERY_S:
                last_flush[0] = time.monotonic()
                try:
                    with self.sessions() as s, s.begin():
                        ops.save_progress(s, op.id, list(progress))
                except Exception:
                    log.exception("saving progress failed")

        try:
            # A drift check holds no lock and leaves nothing pending; and recovery's
            # refresh would accept into the state the very drift it is to find.
            if payload.get("recover") and op.kind != OperationKind.DRIFT_CHECK:
                engine.recover(self.settings, op.deployment_name)
            if op.kind == OperationKind.DELETE:
                message, result = self._delete(op, on_event)
            elif op.kind in drift_runs.KINDS:
                message, result = drift_runs.run(self.settings, self.sessions, op, on_event, self._set_status)
            else:
                message, result = self._apply(op, payload, on_event)
        except Exception as exc:
            error = str(exc) if isinstance(exc, engine.EngineError) else f"{type(exc).__name__}: {exc}"
            log.warning("operation %s (%s %s) failed: %s", op.id, op.kind, op.deployment_name, error)
            with self.sessions() as s, s.begin():
                failed = f"{op.message or op.kind}: failed"
                ops.finish(s, op.id, ok=False, message=failed, error=error, progress=progress)
                # A failed drift check says nothing about the deployment itself (its result keeps the error).
                if op.kind != OperationKind.DRIFT_CHECK:
                    self._mark_error(s, op.deployment_name, error, deleting=op.kind == OperationKind.DELETE)
            if self.on_failed is not None:
                try:
                    self.on_failed(op.kind, op.deployment_name, payload, error)
                except Exception:
                    log.exception("the failure hook of operation %s failed", op.id)
                self.notify()
            return
        with self.sessions() as s, s.begin():
            ops.finish(s, op.id, ok=True, message=message, result=result, progress=progress)

    def _apply(
        self, op: Operation, payload: dict[str, Any], on_event: Callable[[dict[str, Any]], None]
    ) -> tuple[str, dict[str, Any]]:
        name = op.deployment_name
        if "spec" in payload:  # create: the whole spec was validated by the API
            current = None
            target = msgspec.convert(payload["spec"], DeploymentSpec)
            message = describe_change(None, target)
        else:
            current = engine.current_spec(self.settings, name)
            if current is None:
                raise engine.EngineError(f"deployment {name} has no configuration yet; it was never created")
            change = msgspec.convert(payload.get("change", {}), Change)
            if change.rollback_version is not None:
                target = self._placed(engine.spec_at(self.settings, name, change.rollback_version))
                message = f"rollback to revision {change.rollback_version}: {describe_change(current, target)}"
            else:
                target = self._placed(apply_change(current, change, load_catalog().get(current.template)))
                message = describe_change(current, target)
                if op.kind == OperationKind.AUTO_UPDATE:
                    expected = (payload.get("auto_update") or {}).get("expect_image", current.image)
                    if expected != current.image:  # the spec changed after the poll decided
                        return f"skipped: the image is now {current.image}, not {expected}", {"changed": False}
                    message = op.message or message  # "auto-update nginx:1.25.3 -> 1.25.4 (sha256:...)"
            if target == current:
                return "no change: the spec already matches", {"changed": False}
        self._set_status(name, "Provisioning", op.message or message)
        applied = engine.apply(self.settings, target, message, on_event)
        with self.sessions() as s, s.begin():
            dep = s.query(Deployment).filter_by(name=name).one_or_none()
            if dep is not None:
                dep.status = DeploymentStatus.READY
                dep.status_message = None
                dep.last_error = None
                dep.ingresses = [msgspec.to_builtins(i) for i in applied.ingresses]
                dep.image = target.image
                dep.visibility = target.visibility
                dep.revision = (dep.revision or 0) + 1
        return message, {"changed": True, "changes": applied.changes}

    def _placed(self, spec: DeploymentSpec) -> DeploymentSpec:
        """Where and how the service deploys now (domain, ingress, the namespace's
        confinement) wins over what the spec recorded."""
        service = self.settings.service
        return with_placement(spec, service.base_domain, service.ingress_controller, self.settings.tenancy)

    def _delete(self, op: Operation, on_event: Callable[[dict[str, Any]], None]) -> tuple[str, dict[str, Any]]:
        name = op.deployment_name
        engine.destroy(self.settings, name, on_event)
        with self.sessions() as s, s.begin():
            dep = s.query(Deployment).filter_by(name=name).one_or_none()
            if dep is not None:
                record_billing_event(
                    s,
                    kind="deployment.deleted",
                    user_id=dep.owner_user_id,
                    team_id=dep.team_id,
                    deployment_name=name,
                    template=dep.template,
                )
                s.delete(dep)
            ops.fail_queued(s, name, "the deployment was deleted")
        return "deleted", {"deleted": True}

    def _set_status(self, name: str, status: str, message: str | None) -> None:
        with self.sessions() as s, s.begin():
            dep = s.query(Deployment).filter_by(name=name).one_or_none()
            if dep is not None and dep.status != DeploymentStatus.DELETING:
                dep.status = status
                dep.status_message = message

    @staticmethod
    def _mark_error(s: Session, name: str, error: str, *, deleting: bool) -> None:
        dep = s.query(Deployment).filter_by(name=name).one_or_none()
        if dep is None:
            return
        dep.last_error = error
        # A failed delete stays Deleting so the next start retries it.
        dep.status = DeploymentStatus.DELETING if deleting else "Error"
        dep.status_message = error
