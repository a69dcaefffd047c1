"""`python -m api worker`: a process that runs operations and takes its turn at
leading the auto-update scheduler, with no HTTP (scale workers apart from the API)."""

from __future__ import annotations

import logging
import signal
import threading

from persistence.db import make_engine, migrate, session_factory
from scheduler.failures import RollbackOnFailure
from scheduler.jobs import AutoUpdateScheduler
from stacks.exclusive import claim_sqlite_workers, release_sqlite_workers
from stacks.runner import Runner
from stacks.settings import Settings

log = logging.getLogger("shipstack.worker")


def run_worker(settings: Settings, stop: threading.Event | None = None) -> int:
    """Runs until SIGTERM or SIGINT (or `stop` is set)."""
    stop = stop or threading.Event()
    engine = make_engine(settings.service.database_url)
    migrate(engine)
    claim_sqlite_workers(engine)
    writes = session_factory(engine, immediate=True)
    runner = Runner(settings, writes, on_failed=RollbackOnFailure(settings, writes))
    scheduler = AutoUpdateScheduler(settings, engine, notify=runner.notify)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    runner.start()
    scheduler.start()
    log.info("worker %s running %d workers", runner.owner, runner.workers)
    try:
        stop.wait()
    finally:
        scheduler.stop()
        runner.stop()
        release_sqlite_workers()
        engine.dispose()
    return 0
