"""stacks.children: this process's pulumi for a stack found by its `--stack` argument
and killed with the plugins it started, and nothing else (another stack's, or a process
that is not ours); plugins a killed pulumi left behind reaped, and no other process."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from stacks.children import kill_pulumi, pulumi_children, reap_orphaned_plugins

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


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its new parent to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def test_killing_a_pulumi_kills_the_plugins_it_started() -> None:
    starts_a_plugin = (
        "import subprocess, sys, time; "
        "plugin = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(plugin.pid, flush=True); time.sleep(60)"
    )
    web = subprocess.Popen([sys.executable, "-c", starts_a_plugin, "up", "--stack", "web"], stdout=subprocess.PIPE)
    try:
        assert web.stdout is not None
        plugin = int(web.stdout.readline())
        assert sorted(kill_pulumi("web")) == sorted([web.pid, plugin])
        assert web.wait(10) == -9
        assert _gone(plugin), "the plugin outlived its pulumi"
    finally:
        web.kill()
        web.wait(10)


def test_plugins_whose_pulumi_died_are_reaped_and_no_other_process(tmp_path: Path) -> None:
    home = tmp_path / "pulumi-home"
    plugin_dir = home / "plugins" / "resource-fake-v1.0.0"
    plugin_dir.mkdir(parents=True)
    plugin = plugin_dir / "pulumi-resource-fake"  # a real executable, run from the plugins folder
    shutil.copy(shutil.which("sleep") or "/bin/sleep", plugin)
    fake_pulumi = tmp_path / "bin" / "pulumi"  # a shell under pulumi's name, as a live parent
    fake_pulumi.parent.mkdir()
    shutil.copy(shutil.which("sh") or "/bin/sh", fake_pulumi)

    live_parent = subprocess.Popen([str(fake_pulumi), "-c", f"'{plugin}' 60 & echo $!; wait"], stdout=subprocess.PIPE)
    orphaning = subprocess.run(["sh", "-c", f"'{plugin}' 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    unrelated = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    assert live_parent.stdout is not None
    kept, orphan, other = int(live_parent.stdout.readline()), int(orphaning.stdout), int(unrelated.stdout)
    try:
        assert _alive(orphan) and _alive(kept) and _alive(other)
        assert reap_orphaned_plugins(home) == [orphan]
        assert _gone(orphan)
        assert _alive(kept), "a plugin whose pulumi lives was killed"
        assert _alive(other), "a process outside the plugins folder was killed"
    finally:
        for pid in (kept, orphan, other):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        live_parent.kill()
        live_parent.wait(10)
