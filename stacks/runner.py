"""The operation runner: a bounded pool of worker threads that drains the durable
operation queue, in this process or in any number of processes on any hosts sharing
the database.

Each worker claims a batch (one deployment's queued operations, `persistence.
operations.claim_next`) under a fresh claim token, takes the stack's lock (`stacks.
stacklock`: one pulumi per stack across every host; a stack still held elsewhere gives
the batch back to the queue), carries it out (`stacks.execute`) and records the outcome
fenced by that token. Engine events become the operations' progress, kept in the
database (for other processes and after the fact) and pushed to in-process listeners
(for live event streams).

The runner is a worker with a lease (`persistence.workers`, a row named by a random
id). Every HEARTBEAT_EVERY_S it renews the lease and the operations it runs, and
re-drives the operations of dead workers (`stacks.redrive`), so a worker's death is
repaired by any live one within the lease and one heartbeat (40 s).
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

from sqlalchemy.orm import Session, sessionmaker

from persistence import operations as ops
from persistence import workers as leases
from persistence.models import Deployment, Operation
from stacks import children, legacy, redrive, stacklock
from stacks.execute import Executor, OnFailed
from stacks.settings import Settings

log = logging.getLogger("shipstack.runner")
HEARTBEAT_EVERY_S = 10.0
# A stack found busy elsewhere is not claimed again by this runner for this long.
BUSY_RETRY_S = 3.0


class Runner:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        workers: int | None = None,
        on_failed: OnFailed | None = None,
        wake_elsewhere: Callable[[], None] | None = None,
        publish_elsewhere: Callable[[str, dict[str, Any] | None], None] | None = None,
    ) -> None:
        self.settings = settings
        # Wakes the workers of another process (`serve`'s child worker) on notify, and
        # hands this process's engine events to another's listeners (the child's to the
        # API process serving the streams).
        self.wake_elsewhere = wake_elsewhere
        self.publish_elsewhere = publish_elsewhere
        self.sessions = sessions
        self.workers = workers or settings.service.workers
        # One tenant (a team, or a user) may run at most this many operations at once in
        # this runner, so its long queue never holds every thread of it.
        self.tenant_limit = max(1, self.workers - 1)
        # The worker's id, its lease row's key and every claim's `claimed_by`.
        self.owner = str(uuid.uuid4())
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.stack_locks = stacklock.for_engine(sessions.kw["bind"])
        # Called as (kind, deployment, payload, error) after a failure is recorded; the
        # scheduler's automatic rollback of a failed auto-update hangs here, so that
        # stacks never imports scheduler.
        self.executor = Executor(settings, sessions, self.publish, on_failed, worker_id=self.owner)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, tuple[str, str]] = {}  # op id -> (deployment name, claim token)
        self._busy_until: dict[str, float] = {}  # deployment name -> monotonic time
        self._lock = threading.Lock()
        self._listeners: dict[str, list[queue.SimpleQueue[dict[str, Any] | None]]] = {}
        self._started = False

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        with self.sessions() as s, s.begin():
            leases.register(s, self.owner, self.host, self.pid)
        self._started = True
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
        deadline = time.monotonic() + timeout  # for all of them: 16 busy threads are not 80 s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        # With nothing left running the lease ends now, so nobody waits for it to
        # expire; a pulumi still running keeps it (no more renewals) until it expires,
        # so no other worker removes that pulumi's backend lock while it may live.
        if self._started and not any(t.is_alive() for t in self._threads):
            try:
                with self.sessions() as s, s.begin():
                    leases.retire(s, self.owner)
            except Exception:
                log.warning("could not end this worker's lease; it expires by itself", exc_info=True)

    def notify(self) -> None:
        """Wakes a worker now rather than at its next poll."""
        self._wake.set()
        if self.wake_elsewhere is not None:
            self.wake_elsewhere()

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

    def publish(self, op_id: str, item: dict[str, Any] | None) -> None:
        """An engine event (None: the operation ended) to this process's listeners."""
        with self._lock:
            listeners = list(self._listeners.get(op_id, []))
        for q in listeners:
            q.put(item)
        if self.publish_elsewhere is not None:
            self.publish_elsewhere(op_id, item)

    # --- recovery ----------------------------------------------------------

    def recover(self) -> None:
        """Re-queues operations of dead workers; retries lost deletes."""
        redrive.recover(self.sessions)

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
            name = batch[0].deployment_name
            try:
                if not self._run_locked(batch, token):
                    with self._lock:
                        self._busy_until[name] = time.monotonic() + BUSY_RETRY_S
            except Exception:
                log.exception("operation %s crashed the worker", batch[0].id)
            finally:
                with self._lock:
                    for op in batch:
                        self._running.pop(op.id, None)
                for op in batch:
                    self.publish(op.id, None)

    def _run_locked(self, batch: list[Operation], token: str) -> bool:
        """Runs the batch holding its stack's lock; False when the stack was busy
        elsewhere and the batch went back to the queue."""
        name = batch[0].deployment_name
        held = self.stack_locks.try_acquire(name, on_lost=lambda: children.kill_pulumi(name))
        if held is None:
            log.info("stack %s is still held by another worker; its operations wait", name)
            with self.sessions() as s, s.begin():
                ops.unclaim(s, [op.id for op in batch], token)
            return False
        try:
            return self.executor.run(batch, token, held)
        finally:
            held.release()

    def _claim(self) -> tuple[list[Operation], str]:
        token = uuid.uuid4().hex
        with self.sessions() as s, s.begin():
            now = time.monotonic()
            with self._lock:
                self._busy_until = {n: until for n, until in self._busy_until.items() if until > now}
                busy = {name for name, _ in self._running.values()} | set(self._busy_until)
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
            if reaped := children.reap_orphaned_plugins(self.settings.engine.pulumi_home):
                log.warning("killed %d provider plugins a killed pulumi left behind: %s", len(reaped), reaped)
            claims: dict[str, list[str]] = {}
            with self._lock:
                for op_id, (_, token) in self._running.items():
                    claims.setdefault(token, []).append(op_id)
            try:
                with self.sessions() as s, s.begin():
                    leases.renew(s, self.owner, self.host, self.pid)
                    ops.heartbeat(s, claims)
            except Exception:
                log.exception("heartbeat failed")
