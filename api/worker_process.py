"""The worker process `python -m api serve` runs beside the API (role `all`): the
operations' Python work (the inline program, the engine's events) and the scheduler
in a child `python -m api worker --from-serve` at a lower priority, so that reads
never wait on its GIL or its CPU.

Its stdin is a pipe from the API process: a byte wakes its workers the moment a write
is accepted (rather than at their next one-second poll), and end of file, which the
kernel delivers however the API process dies, stops it. A second pipe carries the
engine's events back, one JSON line each, to the API process's listeners: progress
streams stay live rather than following the database's copy, saved once a second.

A child that dies is started again, after a pause that grows while it keeps dying;
one that cannot run at all (another process already runs operations on this SQLite
file) stops the service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from stacks.settings import REPO_ROOT, Settings

log = logging.getLogger("shipstack.worker_process")

# `python -m api worker` exits with this when it cannot run here at all (the SQLite
# database already has a process running operations): starting it again cannot help.
CANNOT_RUN = 3
# A child that lived this long had a fair run: its next death starts the pauses over.
STEADY_S = 60.0
# Never at once: a signal to the whole process group (Ctrl+C, `kill -TERM -PGID`)
# stops the child a moment before the API process marks itself as stopping.
MIN_PAUSE_S = 1.0
MAX_PAUSE_S = 30.0
STOP_TIMEOUT_S = 20.0


def restart_pause(exit_code: int, uptime_s: float, deaths_in_a_row: int) -> float | None:
    """Seconds to wait before starting a dead child again, or None to give up.

    `deaths_in_a_row` counts this death too. A child that ran steadily is restarted
    after a second; one that keeps dying waits 1, 2, 4 ... up to 30 s between starts,
    so a broken setting does not spin the CPU."""
    if exit_code == CANNOT_RUN:
        return None
    if uptime_s >= STEADY_S:
        return MIN_PAUSE_S
    return min(MAX_PAUSE_S, MIN_PAUSE_S * 2.0 ** max(0, deaths_in_a_row - 1))


Deliver = Callable[[str, dict[str, Any] | None], None]
# Events waiting for the pipe in the child; beyond, they are dropped (a stream then
# shows them from the database's copy, or not at all if later ones went through).
EVENTS_QUEUED = 10_000


def worker_command(settings: Settings, events_fd: int) -> list[str]:
    nice = shutil.which("nice") or "nice"
    return [
        nice, "-n", str(settings.service.worker_nice),
        sys.executable, "-m", "api", "worker", "--from-serve", "--events-fd", str(events_fd),
    ]  # fmt: skip


class EventSender:
    """The child's end: `send` never blocks an engine thread; one thread writes lines."""

    def __init__(self, fd: int) -> None:
        self._out = os.fdopen(fd, "wb", buffering=0)
        self._queue: queue.Queue[bytes] = queue.Queue(EVENTS_QUEUED)
        self.dropped = 0
        threading.Thread(target=self._write, name="events-out", daemon=True).start()

    def send(self, op_id: str, item: dict[str, Any] | None) -> None:
        try:
            self._queue.put_nowait(msgspec.json.encode([op_id, item]) + b"\n")
        except queue.Full:
            self.dropped += 1

    def _write(self) -> None:
        while True:
            line = self._queue.get()
            try:
                self._out.write(line)
            except OSError:  # the API process is gone; the wake pipe's end stops us
                return


def read_events(fd: int, deliver: Deliver) -> None:
    """The API process's end: each line to `deliver`, until the child's end closes."""
    with os.fdopen(fd, "rb") as lines:
        for line in lines:
            try:
                op_id, item = msgspec.json.decode(line)
            except (msgspec.DecodeError, ValueError):
                log.warning("a malformed event line from the worker process was dropped")
                continue
            deliver(op_id, item)


class WorkerProcess:
    """Starts, wakes, restarts and stops the child; `on_fatal` is called (from the
    supervising thread) when the child cannot run at all."""

    def __init__(self, settings: Settings, on_fatal: Callable[[str], None]) -> None:
        self.settings = settings
        self.on_fatal = on_fatal
        # Where the child's engine events go (the API process's runner's listeners);
        # set once the app exists, events before that have no listener anyway.
        self.on_event: Deliver | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="shipstack-worker-process", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Wakes the child's workers now (a write was accepted)."""
        with self._lock:  # the pipe is closed under the lock too: never a write to a reused fd
            if self._proc is None or self._proc.stdin is None or self._proc.stdin.closed:
                return
            # A full pipe already holds a wake-up; a dead child is started again and
            # finds the queued operation when it starts.
            with contextlib.suppress(OSError):
                os.write(self._proc.stdin.fileno(), b"\n")

    def stopping(self) -> None:
        """The service is stopping: a child that dies from now on is not started again."""
        self._stopping.set()

    def stop(self) -> None:
        """End of file on its pipe and SIGTERM (its running operations are taken over
        later, as after any stop), then SIGKILL if it lingers."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
            if proc is not None and proc.stdin is not None:
                proc.stdin.close()
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("the worker process did not stop within %.0f s; killing it", STOP_TIMEOUT_S)
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(5)

    def _spawn(self) -> None:
        with self._lock:  # so stop() never misses a child started while it stops
            if self._stopping.is_set():
                return
            events_in, events_out = os.pipe()
            try:
                proc = subprocess.Popen(
                    worker_command(self.settings, events_out), stdin=subprocess.PIPE, cwd=REPO_ROOT,
                    pass_fds=(events_out,),
                )  # fmt: skip
            except BaseException:
                os.close(events_in)
                raise
            finally:
                os.close(events_out)  # the child's copy is its own: its exit ends our reading
            assert proc.stdin is not None
            os.set_blocking(proc.stdin.fileno(), False)
            self._proc = proc
        threading.Thread(target=read_events, args=(events_in, self._deliver), name="events-in", daemon=True).start()
        log.info("worker process %d started (nice %d)", proc.pid, self.settings.service.worker_nice)

    def _deliver(self, op_id: str, item: dict[str, Any] | None) -> None:
        if self.on_event is not None:
            self.on_event(op_id, item)

    def _supervise(self) -> None:
        deaths = 0
        while True:
            with self._lock:
                proc = self._proc
            assert proc is not None
            started = time.monotonic()
            code = proc.wait()
            if self._stopping.is_set():
                return
            uptime = time.monotonic() - started
            deaths = 1 if uptime >= STEADY_S else deaths + 1
            with self._lock:
                if proc.stdin is not None:
                    proc.stdin.close()
            pause = restart_pause(code, uptime, deaths)
            if pause is None:
                self.on_fatal(f"the worker process cannot run (exit code {code}); see its message above")
                return
            log.error("the worker process %d died (exit code %d); starting it again in %.0f s", proc.pid, code, pause)
            if self._stopping.wait(pause):
                return
            self._spawn()
            if self._stopping.is_set():
                return
