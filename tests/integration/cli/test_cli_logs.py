"""`shipstack logs -f` in one invocation across dropped connections and restarts of
the deployment: after each drop it resumes with Last-Event-ID (no line repeated or
lost), and when a restart replaces the pod, lines of the new pod arrive, also when
the restart happened while the client was cut off and its Last-Event-ID names a pod
that no longer exists."""

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


def test_logs_follow_resumes_after_drops_and_follows_new_pods(
    http_service: HttpService, cli: Cli, kube: Kube, proxy: TcpProxy
) -> None:
    # The follower's requests go through the proxy, so the test can cut its connection;
    # other commands go straight to the service.
    assert cli.login(f"http://127.0.0.1:{proxy.port}", http_service.key).code == 0
    direct = {"SHIPSTACK_URL": http_service.url}
    r = cli("deploy", "nginx", "--name", NAME, env=direct)
    assert r.code == 0, r.err
    (first_pod,) = kube.running_pods(NS)

    follower = cli.popen("logs", NAME, "-f", "--tail", "2")
    assert follower.stdout is not None and follower.stderr is not None
    out, err = Collected(follower.stdout), Collected(follower.stderr)
    try:
        out.wait_for("first lines", lambda lines: len(lines) >= 3)
        assert not any(PREFIX.match(line) for line in out.lines), "one pod: no prefixes"

        # 1. A drop: it resumes after the last line it had.
        assert proxy.cut() >= 1
        err.wait_for("resume notice", lambda lines: resumes(lines) >= 1)
        seen = len(out.lines)
        out.wait_for("lines after the resume", lambda lines: len(lines) >= seen + 2)

        # 2. A restart while connected: the stream moves to the new pod by itself.
        assert cli("restart", NAME, env=direct).code == 0
        (second_pod,) = kube.running_pods(NS)
        assert second_pod != first_pod
        out.wait_for(f"lines of {second_pod}", lambda lines: starting(lines, f"[{second_pod}] ") >= 2)
        notices = {f"-- following pod {second_pod}", f"-- stopped following pod {first_pod}"}
        err.wait_for("pod notices", lambda lines: notices <= set(lines))

        # 3. A restart while the network is out: the Last-Event-ID it comes back with
        #    names a pod that is gone; the lines of the pod that replaced it arrive.
        with proxy.down():
            before = resumes(err.lines)
            err.wait_for("failed reconnects", lambda lines: resumes(lines) >= before + 2)
            assert cli("restart", NAME, env=direct).code == 0
            (third_pod,) = kube.running_pods(NS)
        out.wait_for(f"lines of {third_pod}", lambda lines: starting(lines, f"[{third_pod}] ") >= 2)
        assert follower.poll() is None, "still following"
    finally:
        follower.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = follower.wait(30)
        except subprocess.TimeoutExpired:
            follower.kill()
            raise
    assert code == 130 and err.lines[-1] == "interrupted"
    # Across the drops and both replacements: each pod's lines in order, none twice, none
    # skipped while it was followed.
    numbers = per_pod(out.lines, first_pod)
    assert set(numbers) == {first_pod, second_pod, third_pod}
    for pod, got in numbers.items():
        assert got == list(range(got[0], got[0] + len(got))), (pod, got)
    assert cli("rm", NAME, env=direct).code == 0
