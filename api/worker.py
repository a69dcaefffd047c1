"""`python -m api worker`: a process that runs operations and takes its turn at
leading the auto-update scheduler, with no HTTP (scale workers apart from the API, or
the child that `python -m api serve` starts: see `api.worker_process`)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

from api.worker_process import EventSender
from persistence.db import make_engine, migrate, session_factory
from scheduler.failures import RollbackOnFailure
from scheduler.jobs import AutoUpdateScheduler
from stacks.exclusive import claim_sqlite_workers, release_sqlite_workers
from stacks.runner import Runner
from stacks.settings import Settings

log = logging.getLogger("shipstack.worker")


def follow_wakes(fd: int, notify: Callable[[], None], stop: threading.Event) -> None:
    """Each read from `fd` (the API process's pipe) wakes the workers; end of file
    (the API process is gone, however it died) stops this process."""
    while True:
        try:
            data = os.read(fd, 4096)  # retried on EINTR by Python itself (PEP 475)
        except OSError:
            data = b""
        if not data:
            log.info("the API process that started this worker is gone; stopping")
            stop.set()
            return
        notify()


def run_worker(
    settings: Settings, stop: threading.Event | None = None, wakes: int | None = None, events: int | None = None
) -> int:
    """Runs until SIGTERM or SIGINT (or `stop` is set, or `wakes`, a pipe's read end,
    is closed); `events`, a pipe's write end, gets every engine event."""
    stop = stop or threading.Event()
    engine = make_engine(settings.service.database_url)
    migrate(engine)
    claim_sqlite_workers(engine)
    writes = session_factory(engine, immediate=True)
    sender = EventSender(events) if events is not None else None
    runner = Runner(
        settings,
        writes,
        on_failed=RollbackOnFailure(settings, writes),
        publish_elsewhere=sender.send if sender is not None else None,
    )
    scheduler = AutoUpdateScheduler(settings, engine, notify=runner.notify)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    runner.start()
    scheduler.start()
    if wakes is not None:
        threading.Thread(target=follow_wakes, args=(wakes, runner.notify, stop), name="wakes", daemon=True).start()
    log.info("worker %s running %d workers", runner.owner, runner.workers)
    try:
        stop.wait()
    finally:
        scheduler.stop()
        runner.stop()
        release_sqlite_workers()
        engine.dispose()
    return 0
