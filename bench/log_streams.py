"""How many log streams (GET /api/deployments/{name}/logs/stream, SSE) one service
process holds open at once, and what each costs.

    .venv/bin/python bench/log_streams.py [--steps 1,100,250,500,1000,2000] [--window 12]
                                          [--deployments 1] [--max-streams 10000]

What it does:
  1. Starts its own local cluster (toolchain/cluster.py, needs `make toolchain`), or
     uses the cluster of $KUBECONFIG when set.
  2. Runs the service (`api.http.app.build_app`) in a separate process under uvicorn,
     with a fresh SQLite database, the rate limit off and MAX_STREAMS raised; creates
     a key and `--deployments` nginx deployments (one pod each) and waits until they
     are Ready. Streams are spread round robin over the deployments: the streams of
     one deployment share one pod watch and one log follow (api.observe.hub.LogHub).
  3. Opens SSE log streams in steps; at each step, over `--window` seconds, measures
     the service's resident memory and CPU, the API server's and kwok's CPU, how many
     streams received a new line (kwok writes one every 2 s) and the delivery
     latency (arrival at the client minus the line's own timestamp).
  4. Stops at the last step, or as soon as a step is unhealthy: a stream failed to
     open, less than 99 % of the streams got a line in the window, or the p95
     latency passed 2 s. Prints a table, the memory per stream (least-squares slope
     of RSS over streams) and the largest healthy step.
  5. Closes every stream and reports the service's connections to the API server
     before, during and after (each stream holds a pod watch and a log follow;
     closing the client must close both).

The client runs on the same machine, so it competes for the same cores: its CPU is
reported too. Everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api.observe.formats import parse_time_ns  # noqa: E402
from bench.common import free_port, log, pct  # noqa: E402

SERVER = r"""
import sys, uvicorn
from api.http.app import build_app
from api.observe.streams import SLOTS
from stacks.settings import Settings
SLOTS.total = SLOTS.per_user = int(sys.argv[2])
app = build_app(Settings.from_env())
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="asyncio", log_level="warning",
            timeout_graceful_shutdown=5, backlog=4096)
"""
CURSOR_TIME = re.compile(r"@([0-9TZ:.\-]+)#")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def connections(pid: int, port: int) -> int:
    """ESTABLISHED TCP connections of process `pid` to 127.0.0.1:`port`."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                parts = row.split()
                if int(parts[2].rsplit(":", 1)[1], 16) == port and parts[3] == "01" and parts[9] in inodes:
                    count += 1
    return count


def kwok_log_errors(path: Path) -> list[str]:
    """Distinct errors kwok logged while serving logs (e.g. the inotify instance limit)."""
    found: dict[str, None] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if "too many open files" in line.lower() or ("logs" in line.lower() and "error" in line.lower()):
                found[re.sub(r"\d", "#", line[-200:])] = None
    return list(found)[:5]


@dataclass
class StreamStats:
    lines: int = 0
    latencies: list[float] = field(default_factory=list)
    error: str | None = None
    opened: bool = False


async def hold_stream(http: httpx.AsyncClient, url: str, headers: dict[str, str], stats: StreamStats) -> None:
    """Reads one SSE stream until cancelled, recording each line's delivery latency."""
    try:
        async with http.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                stats.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return
            stats.opened = True
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    m = CURSOR_TIME.findall(line)
                    if m:
                        sent = max(parse_time_ns(t) or 0 for t in m) / 1e9
                        stats.latencies.append(time.time() - sent)
                        stats.lines += 1
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        stats.error = f"{type(exc).__name__}: {exc}"


@dataclass
class Row:
    streams: int
    rss_mb: float
    threads: int
    service_cpu: float
    apiserver_cpu: float
    kwok_cpu: float
    bench_cpu: float
    delivered: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    kube_connections: int
    failed: int


async def run_bench(
    args: argparse.Namespace, base: str, key: str, names: list[str], pids: dict[str, int], api_port: int
):
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    urls = [f"{base}/api/deployments/{name}/logs/stream?tail=0" for name in names]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    rows: list[Row] = []
    tasks: list[asyncio.Task[None]] = []
    stats: list[StreamStats] = []
    server = pids["service"]
    baseline_conns = connections(server, api_port)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=None), limits=limits) as http:
        for target in args.steps:
            log(f"opening streams up to {target}")
            while len(tasks) < target:
                batch = min(args.open_batch, target - len(tasks))
                for _ in range(batch):
                    s = StreamStats()
                    stats.append(s)
                    url = urls[len(tasks) % len(urls)]  # round robin over the deployments
                    tasks.append(asyncio.create_task(hold_stream(http, url, headers, s)))
                await asyncio.sleep(0.2)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(s.opened or s.error for s in stats):
                await asyncio.sleep(0.5)
            await asyncio.sleep(args.settle)
            before = {s_: (st.lines, len(st.latencies)) for s_, st in enumerate(stats)}
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items() if p}
            bench0 = time.process_time()
            t0 = time.monotonic()
            await asyncio.sleep(args.window)
            elapsed = time.monotonic() - t0
            cpu = {k: (cpu_seconds(p) - cpu0[k]) / elapsed * 100 for k, p in pids.items() if p}
            bench_cpu = (time.process_time() - bench0) / elapsed * 100
            live = [st for st in stats if st.opened and not st.error]
            got = sum(1 for i, st in enumerate(stats) if st.opened and st.lines > before[i][0])
            lat = [x for i, st in enumerate(stats) for x in st.latencies[before[i][1] :]]
            failed = sum(1 for st in stats if st.error)
            row = Row(
                streams=len(live),
                rss_mb=rss_mb(server),
                threads=threads(server),
                service_cpu=cpu.get("service", 0.0),
                apiserver_cpu=cpu.get("kube-apiserver", 0.0),
                kwok_cpu=cpu.get("kwok", 0.0),
                bench_cpu=bench_cpu,
                delivered=got / max(1, len(stats)),
                p50_ms=pct(lat, 0.5) * 1000,
                p95_ms=pct(lat, 0.95) * 1000,
                max_ms=max(lat, default=float("nan")) * 1000,
                kube_connections=connections(server, api_port),
                failed=failed,
            )
            rows.append(row)
            log(
                f"{row.streams} streams: rss {row.rss_mb:.1f} MB, service cpu {row.service_cpu:.0f}%, "
                f"delivered {row.delivered:.1%}, p95 {row.p95_ms:.0f} ms, failed {failed}"
            )
            errors = {st.error for st in stats if st.error}
            if failed or row.delivered < 0.99 or row.p95_ms > 2000:
                log(f"unhealthy at {target} streams; stopping ({sorted(errors)[:3]})")
                break
        during = connections(server, api_port)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # The service notices the disconnects and closes its watches and log follows.
    after = during
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = connections(server, api_port)
        if after <= baseline_conns + 2:
            break
        await asyncio.sleep(0.5)
    rss_after = rss_mb(server)
    return rows, baseline_conns, during, after, rss_after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="1,50,100,200,400,800", help="stream counts to measure at")
    parser.add_argument("--window", type=float, default=12.0, help="seconds measured per step")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds to wait after opening a step's streams")
    parser.add_argument("--open-batch", type=int, default=25, help="streams opened at once")
    parser.add_argument("--deployments", type=int, default=1, help="deployments the streams are spread over")
    parser.add_argument("--max-streams", type=int, default=10000, help="the service's MAX_STREAMS for the run")
    args = parser.parse_args()
    args.steps = [int(x) for x in args.steps.split(",")]

    from toolchain.cluster import LocalCluster

    work = Path(tempfile.mkdtemp(prefix="shipstack-bench-"))
    cluster = None
    kwok_errors: list[str] = []
    server: subprocess.Popen[bytes] | None = None
    env = dict(os.environ)
    if not env.get("KUBECONFIG"):
        log(f"starting a local cluster in {work / 'cluster'}")
        cluster = LocalCluster(work / "cluster")
        env["KUBECONFIG"] = str(cluster.up())
    env.update(
        SHIPSTACK_DATA=str(work / "data"),
        PULUMI_BACKEND_URL=f"file://{work / 'data' / 'state'}",
        SHIPSTACK_RATE_LIMIT="0",
        PYTHONPATH=str(REPO),
    )
    env.pop("SHIPSTACK_DATABASE_URL", None)
    try:
        py = sys.executable
        subprocess.run([py, "-m", "api", "users", "create", "bench"], env=env, cwd=REPO, check=True)
        key = subprocess.run(
            [py, "-m", "api", "keys", "create", "--user", "bench", "--scopes", "deployments:read,deployments:write"],
            env=env, cwd=REPO, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        port = free_port()
        server = subprocess.Popen([py, "-c", SERVER, str(port), str(args.max_streams)], env=env, cwd=REPO)
        base = f"http://127.0.0.1:{port}"
        h = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=h, timeout=60) as c:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if c.get("/api/health").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("the service did not start")
                time.sleep(0.3)
            names = [f"bench-logs-{i}" for i in range(args.deployments)]
            for name in names:
                c.post("/api/deployments", json={"template": "nginx", "name": name}).raise_for_status()
            log(f"{len(names)} deployment(s) created; waiting until Ready")
            deadline = time.monotonic() + 900
            for name in names:
                while (status := c.get(f"/api/deployments/status?name={name}&wait=10").json()["status"]) != "Ready":
                    if status == "Error" or time.monotonic() > deadline:
                        raise SystemExit(f"deployment {name} is {status}")
        kubeconfig = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
        api_port = urlparse(kubeconfig["clusters"][0]["cluster"]["server"]).port or 443
        pids = {"service": server.pid}
        if cluster is not None:
            state = cluster.state() or {}
            pids |= {k: v for k, v in state.get("pids", {}).items() if k in ("kube-apiserver", "kwok")}
        idle_rss = rss_mb(server.pid)
        rows, base_conns, during, after, rss_after = asyncio.run(run_bench(args, base, key, names, pids, api_port))
    finally:
        if server is not None:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(20)
            if server.poll() is None:
                server.kill()
        if cluster is not None:
            kwok_errors = kwok_log_errors(cluster.dir / "logs" / "kwok.log")
            cluster.down()

    print()
    print(f"machine: {os.cpu_count()} cores; one service process (uvicorn, asyncio loop); client on the same machine")
    print(f"streams spread over {args.deployments} deployment(s) of one pod each (one shared upstream per deployment)")
    print(f"service RSS with no stream open (deployment Ready): {idle_rss:.1f} MB")
    head = (
        f"{'streams':>8} {'RSS MB':>8} {'thr':>4} {'svc CPU':>8} {'apisrv':>7} {'kwok':>6} {'client':>7} "
        f"{'got line':>9} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'k8s conns':>9}"
    )
    print(head)
    for r in rows:
        print(
            f"{r.streams:>8} {r.rss_mb:>8.1f} {r.threads:>4} {r.service_cpu:>7.0f}% {r.apiserver_cpu:>6.0f}% "
            f"{r.kwok_cpu:>5.0f}% {r.bench_cpu:>6.0f}% {r.delivered:>8.1%} {r.p50_ms:>7.0f} {r.p95_ms:>7.0f} "
            f"{r.max_ms:>7.0f} {r.kube_connections:>9}"
        )
    healthy = [r for r in rows if r.failed == 0 and r.delivered >= 0.99 and r.p95_ms <= 2000]
    if len(rows) >= 2:
        xs = [r.streams for r in rows]
        ys = [r.rss_mb for r in rows]
        slope = statistics.linear_regression(xs, ys).slope if len(set(xs)) > 1 else float("nan")
        print(f"memory per stream (slope of RSS): {slope * 1024:.0f} KB")
    print(f"largest healthy step: {max((r.streams for r in healthy), default=0)} streams open at once")
    print(
        f"service connections to the API server: {base_conns} before, {during} with streams open, {after} after "
        f"(per deployment 1 pod watch + 1 log follow, shared by its streams; plus up to 32 pooled keep-alives)"
    )
    print(f"service RSS after closing every stream: {rss_after:.1f} MB")
    if kwok_errors:
        print("kwok (the simulated kubelet that serves every log) reported:")
        for line in kwok_errors:
            print(f"  {line}")
    with contextlib.suppress(OSError):
        limit = Path("/proc/sys/fs/inotify/max_user_instances").read_text().strip()
        print(f"fs.inotify.max_user_instances = {limit} (a kubelet, and kwok, uses one per followed log)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
