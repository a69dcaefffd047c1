"""The operation runner: a bounded pool of worker threads that drains the durable
operation queue, in this process or in any number of processes on any hosts sharing
the database.

Each worker claims a batch (one deployment's queued operations, `persistence.
operations.claim_next`) under a fresh claim token, carries it out (`stacks.execute`)
and records the outcome fenced by that token. Engine events become the operations'
progress, kept in the database (for other processes and after the fact) and pushed to
in-process listeners (for live event streams). Operations being run are renewed every
HEARTBEAT_EVERY_S; in the same rhythm any live runner re-drives operations whose
heartbeat stopped (their worker died, on whatever host) and retries a delete that
failed halfway.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import uuid
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from persistence import operations as ops
from persistence.base import utcnow
from persistence.enums import DeploymentStatus, OperationKind
from persistence.models import Deployment, Operation
from stacks import legacy
from stacks.execute import Executor, OnFailed
from stacks.settings import Settings

log = logging.getLogger("shipstack.runner")
MAX_ATTEMPTS = 3
HEARTBEAT_EVERY_S = 10.0


class Runner:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        workers: int | None = None,
        on_failed: OnFailed | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.workers = workers or settings.service.workers
        # One tenant (a team, or a user) may run at most this many operations at once,
        # so its long queue never holds every worker.
        self.tenant_limit = max(1, self.workers - 1)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Called as (kind, deployment, payload, error) after a failure is recorded; the
        # scheduler's automatic rollback of a failed auto-update hangs here, so that
        # stacks never imports scheduler.
        self.executor = Executor(settings, sessions, self._publish, on_failed)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, tuple[str, str]] = {}  # op id -> (deployment name, claim token)
        self._lock = threading.Lock()
        self._listeners: dict[str, list[queue.SimpleQueue[dict[str, Any] | None]]] = {}

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        self.import_legacy_configs()
        self.recover()
        for i in range(self.workers):
            self._spawn(self._loop, f"shipstack-worker-{i}")
        self._spawn(self._heartbeat_loop, "shipstack-heartbeat")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

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

    def subscribe(self, op_id: str) -> queue.SimpleQueue[dict[str, Any] | None]:
        q: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        with self._lock:
            self._listeners.setdefault(op_id, []).append(q)
        return q

    def unsubscribe(self, op_id: str, q: queue.SimpleQueue[dict[str, Any] | None]) -> None:
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
        """Re-queues operations whose worker stopped renewing them; retries lost deletes."""
        with self.sessions() as s, s.begin():
            for op in ops.interrupted(s, stale_before=utcnow() - ops.STALE_AFTER):
                self._requeue(s, op)
            for dep in ops.deployments_stuck_deleting(s):
                log.warning("deployment %s was left half-deleted; retrying the delete", dep.name)
                ops.enqueue(s, dep, OperationKind.DELETE, {}, "retry an interrupted delete")

    def _requeue(self, s: Session, op: Operation) -> None:
        payload = dict(op.payload or {})
        attempt = int(payload.get("attempt", 1)) + 1
        if attempt > MAX_ATTEMPTS:
            reason = f"{op.kind} was interrupted {MAX_ATTEMPTS} times; giving up"
            ops.fail(s, op.id, reason)
            dep = s.get(Deployment, op.deployment_id) if op.deployment_id is not None else None
            if dep is not None:
                deleting = op.kind == OperationKind.DELETE or dep.status == DeploymentStatus.DELETING
                dep.status = DeploymentStatus.DELETING if deleting else DeploymentStatus.ERROR
                dep.last_error = dep.status_message = reason
            return
        payload.update(attempt=attempt, recover=True)
        log.warning("operation %s (%s %s) was interrupted; queued again", op.id, op.kind, op.deployment_name)
        ops.requeue(s, op, payload, f"{op.kind} interrupted (its worker stopped); resuming")

    def import_legacy_configs(self) -> None:
        """Deployments of the single-machine layout get their config of record and
        revisions from `<data>/stacks/` and the backend's history, once."""
        if not self.settings.engine.stacks_dir.is_dir():
            return
        with self.sessions() as s, s.begin():
            for dep in s.query(Deployment).filter(Deployment.stack_config.is_(None)):
                try:
                    with s.begin_nested():  # one deployment's failure undoes only its own import
                        legacy.import_deployment(s, self.settings, dep)
                except Exception:
                    log.exception("importing the stack config of %s failed; it stays as it was", dep.name)

    # --- workers -----------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch, token = self._claim()
            except Exception:
                log.exception("claiming an operation failed")
                batch, token = [], ""
            if not batch:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self.executor.run(batch, token)
            except Exception:
                log.exception("operation %s crashed the worker", batch[0].id)
            finally:
                with self._lock:
                    for op in batch:
                        self._running.pop(op.id, None)
                for op in batch:
                    self._publish(op.id, None)

    def _claim(self) -> tuple[list[Operation], str]:
        token = uuid.uuid4().hex
        with self.sessions() as s, s.begin():
            with self._lock:
                busy = {name for name, _ in self._running.values()}
            batch = ops.claim_next(s, self.owner, token, skip=busy, tenant_limit=self.tenant_limit)
            with self._lock:
                for op in batch:
                    self._running[op.id] = (op.deployment_name, token)
            return batch, token

    def _heartbeat_loop(self) -> None:
        """Renews this runner's operations and re-drives those of dead workers."""
        while not self._stop.wait(HEARTBEAT_EVERY_S):
            try:
                self.recover()
            except Exception:
                log.exception("re-driving interrupted operations failed")
            claims: dict[str, list[str]] = {}
            with self._lock:
                for op_id, (_, token) in self._running.items():
                    claims.setdefault(token, []).append(op_id)
            try:
                with self.sessions() as s, s.begin():
                    ops.heartbeat(s, claims)
            except Exception:
                log.exception("heartbeat failed")
