"""The child worker process of `python -m api serve` (role `all`): started at a lower
priority, holding the one SQLite claim to run operations, woken through its pipe,
started again when it dies, and gone once the API process is, however that died."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from api.worker import follow_wakes
from api.worker_process import CANNOT_RUN, MAX_PAUSE_S, STEADY_S, EventSender, read_events, restart_pause
from persistence.db import make_engine
from stacks.settings import REPO_ROOT
from tests.integration.processes import free_port, process_group, start_service, wait_http
from tests.waiting import wait_until


@pytest.mark.parametrize(
    ("exit_code", "uptime_s", "deaths", "want"),
    [
        (1, 0.5, 1, 1.0),  # the first quick death: a short pause
        (1, 0.5, 2, 2.0),
        (-9, 3.0, 4, 8.0),  # killed: as any other death
        (1, 0.5, 9, MAX_PAUSE_S),  # capped
        (1, STEADY_S, 7, 1.0),  # it had run steadily: after a second
        (0, 0.1, 1, 1.0),  # exiting on its own while the API serves is a death too
        (CANNOT_RUN, 0.2, 1, None),  # another process runs operations here: give up
        (CANNOT_RUN, STEADY_S * 2, 1, None),
    ],
)
def test_restart_pause(exit_code: int, uptime_s: float, deaths: int, want: float | None) -> None:
    assert restart_pause(exit_code, uptime_s, deaths) == want


def test_a_byte_on_the_pipe_wakes_the_workers_and_its_end_stops_the_process() -> None:
    read_end, write_end = os.pipe()
    wakes = threading.Semaphore(0)
    stop = threading.Event()
    follower = threading.Thread(target=follow_wakes, args=(read_end, wakes.release, stop), daemon=True)
    follower.start()
    try:
        os.write(write_end, b"\n")
        assert wakes.acquire(timeout=5)
        assert not stop.is_set()
        os.close(write_end)  # what the kernel does when the API process dies
        assert stop.wait(5)
        follower.join(5)
        assert not follower.is_alive()
    finally:
        os.close(read_end)


def test_engine_events_cross_the_pipe_in_order_and_a_bad_line_is_skipped() -> None:
    read_end, write_end = os.pipe()
    got: list[tuple[str, object]] = []
    reader = threading.Thread(target=read_events, args=(read_end, lambda op, i: got.append((op, i))), daemon=True)
    reader.start()
    sender = EventSender(os.dup(write_end))
    os.write(write_end, b"not json\n")
    os.close(write_end)
    events = [("op-1", {"type": "step", "n": i, "text": "line\nwith a newline"}) for i in range(500)]
    for op_id, item in events:
        sender.send(op_id, item)
    sender.send("op-1", None)  # the operation ended
    deadline = time.monotonic() + 10
    while len(got) < len(events) + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got == [*events, ("op-1", None)]
    assert sender.dropped == 0


# --- the real processes ------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Live children, whichever of its threads started them (each task lists its own)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return [p for p in found if _alive(p)]


def _niceness(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[16])


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Served(NamedTuple):
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    data: Path
    port: int


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Served]:
    """`python -m api serve` on its defaults (role `all`) in a data folder of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPSTACK_", "PULUMI_BACKEND"))}
    env |= {"SHIPSTACK_DATA": str(tmp_path), "SHIPSTACK_WORKERS": "2", "SHIPSTACK_DRIFT_INTERVAL": "0"}
    port = free_port()
    proc = start_service(env, port, tmp_path / "serve.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health")
        yield Served(proc, env, tmp_path, port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pid in _pgroup(proc.pid):  # whatever the test left of the group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _pgroup(pgid: int) -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and process_group(int(e.name)) == pgid]


def _lease_pids(data: Path) -> set[int]:
    engine = make_engine(f"sqlite:///{data / 'shipstack.db'}")
    try:
        with engine.connect() as conn:
            return {row.pid for row in conn.execute(text("SELECT pid FROM workers"))}
    except OperationalError:  # not migrated yet
        return set()
    finally:
        engine.dispose()


def test_serve_runs_operations_in_a_niced_child_started_again_when_it_dies_and_gone_with_the_api(
    service: Served,
) -> None:
    proc, env, data, port = service
    (child,) = wait_until("the worker process", lambda: _children(proc.pid), 60)
    assert _cmdline(child)[-6:-2] == ["api", "worker", "--from-serve", "--events-fd"]
    assert _niceness(child) == 10
    assert _niceness(proc.pid) == 0  # the API keeps its priority
    wait_until("the child's worker lease", lambda: child in _lease_pids(data), 60)
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10).read())
    assert health == {"status": "ok", "workers": 1}

    # The child, not the API process, holds the right to run operations on this SQLite
    # file: a second worker is refused, and says why.
    second = subprocess.run([sys.executable, "-m", "api", "worker"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert second.returncode == CANNOT_RUN
    assert "another shipstack process runs operations" in second.stderr

    # kill -9 of the child: the API process starts another one.
    os.kill(child, signal.SIGKILL)
    (again,) = wait_until("a new worker process", lambda: [p for p in _children(proc.pid) if p != child], 60)
    wait_until("the new child's worker lease", lambda: again in _lease_pids(data), 60)
    assert "died (exit code -9); starting it again" in (data / "serve.log").read_text()

    # kill -9 of the API process alone: its pipe closes and the child stops by itself.
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    wait_until("the orphaned worker process stopping", lambda: not _alive(again), 30)
    assert "the API process that started this worker is gone" in (data / "serve.log").read_text()


def test_a_signal_to_the_whole_service_stops_both_processes_and_starts_nothing_again(
    service: Served,
) -> None:
    proc, _, data, _ = service
    (child,) = wait_until("the worker process", lambda: _children(proc.pid), 60)
    wait_until("the child's worker lease", lambda: child in _lease_pids(data), 60)
    os.killpg(proc.pid, signal.SIGTERM)  # what `kill -TERM -PGID`, or Ctrl+C's SIGINT, does
    assert proc.wait(30) == -signal.SIGTERM  # uvicorn ends by raising the signal again, as a server should
    wait_until("the worker process stopping", lambda: not _alive(child), 30)
    assert _pgroup(proc.pid) == []
    assert "starting it again" not in (data / "serve.log").read_text()


def test_serve_stops_and_says_why_when_its_worker_cannot_run(tmp_path: Path) -> None:
    """Another process already runs operations on this SQLite file: a service whose
    writes nothing would run is not left serving."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPSTACK_", "PULUMI_BACKEND"))}
    env |= {"SHIPSTACK_DATA": str(tmp_path), "SHIPSTACK_WORKERS": "1", "SHIPSTACK_DRIFT_INTERVAL": "0"}
    holder = subprocess.Popen([sys.executable, "-m", "api", "worker"], cwd=REPO_ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_until("the first worker's lease", lambda: _lease_pids(tmp_path), 60)
        served = subprocess.run([sys.executable, "-m", "api", "serve", "--port", str(free_port())], cwd=REPO_ROOT,
                                env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        holder.terminate()
        holder.wait(30)
    assert served.returncode == 1
    assert "another shipstack process runs operations on the SQLite database" in served.stderr
    assert "the worker process cannot run (exit code 3)" in served.stderr
