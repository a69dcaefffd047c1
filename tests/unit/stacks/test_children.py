"""stacks.children: this process's pulumi for a stack found by its `--stack` argument
and killed, and nothing else (another stack's, or a process that is not ours)."""

from __future__ import annotations

import subprocess
import sys

from stacks.children import kill_pulumi, pulumi_children

SLEEP = "import time; time.sleep(60)"


def test_finds_and_kills_only_the_stacks_own_child() -> None:
    web = subprocess.Popen([sys.executable, "-c", SLEEP, "up", "--stack", "web"])
    db = subprocess.Popen([sys.executable, "-c", SLEEP, "up", "--stack", "web2"])
    try:
        assert pulumi_children("web") == [web.pid]
        assert kill_pulumi("web") == [web.pid]
        assert web.wait(10) == -9
        assert db.poll() is None
        assert pulumi_children("web") == []
    finally:
        web.kill()
        db.kill()
        db.wait(10)
