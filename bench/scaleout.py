"""Operations per minute with 1, 2 and 3 worker processes sharing one PostgreSQL (the
service's database and Pulumi's postgres:// state), and the CPU seconds each operation
costs, on this machine.

    .venv/bin/python bench/scaleout.py [--workers 1,2,3] [--deployments 6] [--rounds 4] [--threads 2]

Starts its own local cluster and a throwaway PostgreSQL (needs `make toolchain` first).
For each count of worker processes: fresh databases, one API process
(SHIPSTACK_ROLE=api) and that many `python -m api worker` processes (`--threads`
operations at once each: SHIPSTACK_WORKERS); `--deployments` nginx deployments are
created (not timed), each by a user of its own, then as many clients as deployments
each change its own deployment's config `--rounds` times, one write after the other's
operation finished (so no two writes compose into one update). Timed: those
operations, from the first write to the last finish.

CPU seconds are the kernel's accounting: the worker processes with what they started
and waited for (pulumi and its Kubernetes provider), the API process, and the
PostgreSQL server (postmaster, its exited and live backends). The local cluster's API
server and etcd are not counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.local import cluster_and_postgres
from tests.integration.processes import free_port, seed_database, start, stop_service, wait_http
from tests.postgres import TempPostgres, fresh_database

PASSPHRASE = "bench-scaleout-passphrase"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    """CPU seconds of a process and of the children it has waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK  # utime stime cutime cstime


def postgres_cpu(pg: TempPostgres) -> float:
    assert pg.dir is not None
    postmaster = int((pg.dir / "data" / "postmaster.pid").read_text().split()[0])
    live = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p.name) == postmaster]
    return cpu_of(postmaster) + sum(cpu_of(pid) - _children_cpu(pid) for pid in live)


def _parent(pid: str) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError):
        return -1


def _children_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / TICK


class Service:
    """One API process and `workers` worker processes on fresh databases."""

    def __init__(self, root: Path, env: dict[str, str], workers: int) -> None:
        root.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        api_env = {**env, "SHIPSTACK_DATA": str(root / "api"), "SHIPSTACK_ROLE": "api"}
        self.api = start(["serve", "--port", str(self.port)], api_env, root / "api.log")
        self.workers = [start(["worker"], {**env, "SHIPSTACK_DATA": str(root / f"w{i}")}, root / f"w{i}.log")
                        for i in range(workers)]  # fmt: skip
        wait_http(f"{self.url}/api/health")

    def cpu(self) -> tuple[float, float]:
        return sum(cpu_of(w.pid) for w in self.workers), cpu_of(self.api.pid)

    def stop(self) -> None:
        for proc in [*self.workers, self.api]:
            stop_service(proc)


def run_ops(url: str, headers: dict[str, str], name: str, rounds: int, failures: list[str]) -> None:
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        for i in range(rounds):
            body = {"deployment_name": name, "configData": {"ROUND": str(i)}}
            op_id = http.put("/api/deployments/config", json=body).json()["operationId"]
            while (op := http.get(f"/api/operations/{op_id}").json())["status"] not in ("succeeded", "failed"):
                time.sleep(0.2)
            if op["status"] != "succeeded":
                failures.append(f"{name}: {op.get('error')}")


def wait_for(url: str, headers: dict[str, str], name: str, want: str) -> None:
    """Until the deployment's status is `want` ("gone": deleted)."""
    deadline = time.monotonic() + 600
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        while time.monotonic() < deadline:
            r = http.get(f"/api/deployments/status?name={name}")
            if (r.status_code == 404 and want == "gone") or (r.status_code == 200 and r.json()["status"] == want):
                return
            time.sleep(1)
    raise SystemExit(f"{name} did not become {want}")


def measure(root: Path, pg: TempPostgres, kubeconfig: Path, workers: int, args: argparse.Namespace) -> dict:
    with fresh_database(pg.url, "bench_db") as db_url, fresh_database(pg.url, "bench_state") as state_url:
        names = [f"so-{workers}-{i}" for i in range(args.deployments)]
        # A user (tenant) per deployment, as in a service shared by many: one tenant's
        # fair share (SHIPSTACK_WORKERS - 1 per worker) is not what is measured.
        owners = {n: {"Authorization": f"Bearer {seed_database(db_url, n)}"} for n in names}
        state = state_url.rsplit("/", 1)[1]
        env = {**os.environ, "SHIPSTACK_DATABASE_URL": db_url, "KUBECONFIG": str(kubeconfig),
               "PULUMI_BACKEND_URL": f"postgres://shipstack:x@127.0.0.1:{pg.port}/{state}?sslmode=disable",
               "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE, "SHIPSTACK_WORKERS": str(args.threads),
               "SHIPSTACK_DRIFT_INTERVAL": "0"}  # fmt: skip
        service = Service(root / f"{workers}-workers", env, workers)
        try:
            for name in names:
                body = {"template": "nginx", "name": name}
                httpx.post(f"{service.url}/api/deployments", json=body, headers=owners[name]).raise_for_status()
            for name in names:
                wait_for(service.url, owners[name], name, "Ready")
            cpu0, api0, pg0, t0 = *service.cpu(), postgres_cpu(pg), time.perf_counter()
            failures: list[str] = []
            clients = [threading.Thread(target=run_ops, args=(service.url, owners[n], n, args.rounds, failures))
                       for n in names]  # fmt: skip
            for c in clients:
                c.start()
            for c in clients:
                c.join()
            wall = time.perf_counter() - t0
            cpu1, api1, pg1 = *service.cpu(), postgres_cpu(pg)
            for name in names:
                body = {"deployment_name": name}
                httpx.post(f"{service.url}/api/deployments/delete", json=body, headers=owners[name]).raise_for_status()
            for name in names:
                wait_for(service.url, owners[name], name, "gone")
        finally:
            service.stop()
    count = len(names) * args.rounds
    return {"ops": count, "wall": wall, "per_min": 60 * count / wall, "failures": failures,
            "workers_cpu": (cpu1 - cpu0) / count, "api_cpu": (api1 - api0) / count,
            "pg_cpu": (pg1 - pg0) / count}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,3", help="worker process counts to measure")
    parser.add_argument("--deployments", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=4, help="config changes per deployment")
    parser.add_argument("--threads", type=int, default=2, help="SHIPSTACK_WORKERS of each worker process")
    args = parser.parse_args()
    results = {}
    with cluster_and_postgres("shipstack-bench-scaleout-") as (root, cluster, pg):
        for count in (int(w) for w in args.workers.split(",")):
            results[count] = measure(root, pg, cluster.kubeconfig_path, count, args)
            print(f"  {count} worker processes: {results[count]}", flush=True)
    print(f"\nconfig changes of {args.deployments} nginx deployments, {args.rounds} each, one at a time per "
          f"deployment; {args.threads} operations at once per worker process; {os.cpu_count()} cores")  # fmt: skip
    print(f"{'workers':>7} {'ops':>4} {'wall s':>7} {'ops/min':>8} {'CPU s/op: workers+pulumi':>25} "
          f"{'API':>5} {'PostgreSQL':>10} {'failed':>6}")  # fmt: skip
    for count, r in results.items():
        print(f"{count:7} {r['ops']:4} {r['wall']:7.1f} {r['per_min']:8.1f} {r['workers_cpu']:25.2f} "
              f"{r['api_cpu']:5.2f} {r['pg_cpu']:10.2f} {len(r['failures']):6}")  # fmt: skip


if __name__ == "__main__":
    main()
