"""Watching processes from /proc while something runs, for the benches and the tests
that check what an operation starts: which processes, for how long, their CPU and
memory, and whether any command line carries a secret.

Linux only (it reads /proc). A sampler sees what lives at least one sampling interval;
the CPU a process spent after its last sample is not counted, so CPU figures of whole
operations come from the kernel's accounting of waited-for children instead
(`children_cpu_s`), and this is the cross-check.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _boot_time() -> float:
    """Epoch seconds at boot, to the clock tick (/proc/stat's btime is whole seconds
    and may be a second off)."""
    return time.time() - float(Path("/proc/uptime").read_text().split()[0])


BOOT_TIME = _boot_time()


@dataclass
class Stat:
    """The fields of /proc/PID/stat this module uses."""

    pid: int
    name: str
    ppid: int
    cpu_s: float  # its own user + system time
    children_cpu_s: float  # user + system time of its children it waited for
    started_at: float  # epoch seconds
    rss_kib: int


def read_stat(pid: int) -> Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    rest = text[text.rindex(")") + 2 :].split()
    # Field numbers of proc(5), minus 3: state is rest[0].
    return Stat(
        pid=pid,
        name=name,
        ppid=int(rest[1]),
        cpu_s=(int(rest[11]) + int(rest[12])) / CLK_TCK,
        children_cpu_s=(int(rest[13]) + int(rest[14])) / CLK_TCK,
        started_at=BOOT_TIME + int(rest[19]) / CLK_TCK,
        rss_kib=int(rest[21]) * PAGE_KIB,
    )


def children_cpu_s(pid: int) -> float:
    """CPU seconds of the children `pid` has waited for (and of theirs, transitively)."""
    stat = read_stat(pid)
    return stat.children_cpu_s if stat else 0.0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def all_stats() -> dict[int, Stat]:
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (stat := read_stat(int(entry.name))) is not None:
            out[stat.pid] = stat
    return out


def descendants(root: int, stats: dict[int, Stat]) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: set[int] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


@dataclass
class Seen:
    """A process as sampled: its last name (a wrapper that execs keeps its pid and
    changes its name), its lifetime, its last CPU figure and its peak memory."""

    pid: int
    name: str  # the executable's name, from the command line
    comm: str  # the kernel's (first 15 characters)
    cmdline: str
    started_at: float
    last_seen: float
    cpu_s: float
    peak_rss_kib: int

    def wall_s(self, interval: float) -> float:
        """Start to exit, give or take one sampling interval."""
        return self.last_seen + interval / 2 - self.started_at


@dataclass
class ProcessSampler:
    """Every process started below `root` (default: this process) while the sampler
    runs, and those of `include` (a service started before); the others already
    running when it starts (a cluster) are left out. With `secrets`, every command line
    on the machine is checked for each of them at each sample (`leaks` lists (pid,
    process name, label) of the ones found)."""

    root: int = field(default_factory=os.getpid)
    interval: float = 0.02
    include: tuple[int, ...] = ()
    secrets: dict[str, str] = field(default_factory=dict)  # label -> secret text
    seen: dict[int, Seen] = field(default_factory=dict)
    leaks: list[tuple[int, str, str]] = field(default_factory=list)
    peak_tree_rss_kib: int = 0  # the largest sum of the sampled processes' RSS at one sample

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-sampler", daemon=True)
        self._before = descendants(self.root, all_stats())
        self._names: tuple[str, ...] = ()
        self.samples = 0

    def watch_rss_of(self, names: Iterable[str]) -> ProcessSampler:
        """`peak_tree_rss_kib` sums only processes with these names (default: all sampled)."""
        self._names = tuple(names)
        return self

    def sample(self) -> None:
        now = time.time()
        stats = all_stats()
        tree_rss = 0
        for pid in (descendants(self.root, stats) - self._before) | (set(self.include) & stats.keys()):
            stat = stats[pid]
            seen = self.seen.get(pid)
            if seen is None or seen.comm != stat.name:
                line = cmdline(pid)
                if seen is None:
                    seen = self.seen[pid] = Seen(pid, stat.name, stat.name, line, stat.started_at, now, 0.0, 0)
                seen.comm, seen.cmdline = stat.name, line
                # The kernel keeps 15 characters of a name; the command line has it whole.
                seen.name = Path(line.split(" ", 1)[0]).name if line else stat.name
            seen.last_seen, seen.cpu_s = now, stat.cpu_s
            seen.peak_rss_kib = max(seen.peak_rss_kib, stat.rss_kib)
            if not self._names or seen.name in self._names:
                tree_rss += stat.rss_kib
        self.peak_tree_rss_kib = max(self.peak_tree_rss_kib, tree_rss)
        if self.secrets:
            for pid, stat in stats.items():
                line = cmdline(pid)
                for label, secret in self.secrets.items():
                    if secret in line:
                        self.leaks.append((pid, stat.name, label))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def named(self, *names: str) -> list[Seen]:
        return [s for s in self.seen.values() if s.name in names]

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
