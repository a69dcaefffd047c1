"""`shipstack logs -f` in one invocation across dropped connections and a restart of
the deployment: after each drop it resumes with Last-Event-ID (no line repeated or
lost), and when the restart replaces the pod, lines of the new pod arrive."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO

import pytest

from tests.integration.cli.conftest import Cli, HttpService, Kube, TcpProxy

NAME = "cli-logs"
NS = f"sd-{NAME}"
# kwok's simulated access log: one line every 2 s, numbered.
REQUEST = re.compile(r"request=(\d+)$")
PREFIX = re.compile(r"^\[([a-z0-9.-]+)\] ")


class Collected:
    """The lines a pipe delivers, read by a thread, waited on by the test."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, what: str, test: Callable[[list[str]], bool], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not test(self.lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no {what} in {timeout} s; got:\n" + "\n".join(self.lines[-30:]))
                self._changed.wait(left)


def starting(lines: list[str], text: str) -> int:
    return sum(line.startswith(text) for line in lines)


def resumes(lines: list[str]) -> int:
    return sum("resuming after the last line" in line for line in lines)


def per_pod(lines: list[str], first_pod: str) -> dict[str, list[int]]:
    """Request numbers by pod; lines without a prefix come from the only pod there was."""
    numbers: dict[str, list[int]] = {}
    for line in lines:
        pod = m.group(1) if (m := PREFIX.match(line)) else first_pod
        if n := REQUEST.search(line):
            numbers.setdefault(pod, []).append(int(n.group(1)))
    return numbers


def test_logs_follow_resumes_after_drops_and_follows_the_new_pod(
    http_service: HttpService, cli: Cli, kube: Kube, proxy: TcpProxy
) -> None:
    # Every request goes through the proxy, so the test can cut the connection.
    assert cli.login(f"http://127.0.0.1:{proxy.port}", http_service.key).code == 0
    r = cli("deploy", "nginx", "--name", NAME)
    assert r.code == 0, r.err
    (old_pod,) = kube.running_pods(NS)

    follower = cli.popen("logs", NAME, "-f", "--tail", "2")
    assert follower.stdout is not None and follower.stderr is not None
    out, err = Collected(follower.stdout), Collected(follower.stderr)
    try:
        out.wait_for("first lines", lambda lines: len(lines) >= 3)
        assert not any(PREFIX.match(line) for line in out.lines), "one pod: no prefixes"

        assert proxy.cut() >= 1
        err.wait_for("resume notice", lambda lines: resumes(lines) >= 1)
        seen = len(out.lines)
        out.wait_for("lines after the resume", lambda lines: len(lines) >= seen + 2)

        r = cli("restart", NAME)
        assert r.code == 0, r.err
        (new_pod,) = kube.running_pods(NS)
        assert new_pod != old_pod
        from_new = f"[{new_pod}] "
        out.wait_for(f"lines of {new_pod}", lambda lines: starting(lines, from_new) >= 2)
        err.wait_for("pod notices", lambda lines: {f"-- following pod {new_pod}",
                                                   f"-- stopped following pod {old_pod}"} <= set(lines))  # fmt: skip

        before = resumes(err.lines)
        assert proxy.cut() >= 1
        err.wait_for("second resume", lambda lines: resumes(lines) > before)
        seen = starting(out.lines, from_new)
        out.wait_for("new pod's lines after the resume", lambda lines: starting(lines, from_new) > seen)
        assert follower.poll() is None, "still following"
    finally:
        follower.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = follower.wait(30)
        except subprocess.TimeoutExpired:
            follower.kill()
            raise
    assert code == 130 and err.lines[-1] == "interrupted"
    # Across two drops and a pod replacement: each pod's lines in order, none twice, none missing.
    for pod, numbers in per_pod(out.lines, old_pod).items():
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), (pod, numbers)
    assert cli("rm", NAME).code == 0
