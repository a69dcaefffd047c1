"""Rollouts wait on the cluster, not the CPU: ten creates submitted at once beside
one alone, for a few sizes of the worker pool.

    .venv/bin/python bench/parallel_creates.py [--creates 10] [--workers 4,16]

Starts its own local cluster (or uses $KUBECONFIG); for each SHIPSTACK_WORKERS value
starts the service under uvicorn in a child process, creates one nginx deployment
alone, then `--creates` at once (one user, as fast as one client sends them), and
prints for each: the wall time from the first request to the last create's
`finishedAt` (the deployment is Ready in the same transaction), the most pulumi
processes at once, their CPU seconds (with the provider's), the peak memory of the
engine's processes together and how busy the machine was. Beside them: the `pulumi
up` of the create alone (the bare engine). Everything is deleted between runs.
Goal (issue 13): all Ready within 2x the time of one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from toolchain.processes import ProcessSampler, children_cpu_s

ENGINE = ("pulumi", "pulumi-resource-kubernetes")


@dataclass
class Run:
    creates: int
    wall_s: float
    most_at_once: int
    engine_cpu_s: float
    machine_busy: float  # of all cores, over the run
    peak_engine_mib: float
    up_alone_s: float


def machine_busy_s() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def at_once(sampler: ProcessSampler, name: str) -> int:
    """The most processes called `name` alive at one time (start/end from the samples)."""
    events = sorted(
        [(s.started_at, 1) for s in sampler.named(name)]
        + [(s.last_seen + sampler.interval / 2, -1) for s in sampler.named(name)]
    )
    most = alive = 0
    for _, step in events:
        alive += step
        most = max(most, alive)
    return most


def creates(c: httpx.Client, service: common.ServiceProcess, prefix: str, count: int) -> Run:
    cpu0, busy0 = children_cpu_s(service.pid), machine_busy_s()
    with ProcessSampler(interval=0.05).watch_rss_of(ENGINE) as sampler:
        t0 = time.time()
        ids = [
            c.post("/api/deployments", json={"template": "nginx", "name": f"{prefix}-{i}"})
            .raise_for_status()
            .json()["operationId"]
            for i in range(count)
        ]
        ops = [common.wait_operation(c, op, poll_s=0.25) for op in ids]
        wall = max(common.finished_at(op) for op in ops) - t0
    failed = [op for op in ops if op["status"] != "succeeded"]
    if failed:
        raise SystemExit(f"{len(failed)} creates failed: {failed[0].get('error')}")
    ups = [s.wall_s(sampler.interval) for s in sampler.named("pulumi") if " up " in f"{s.cmdline} "]
    return Run(
        creates=count,
        wall_s=wall,
        most_at_once=at_once(sampler, "pulumi"),
        engine_cpu_s=children_cpu_s(service.pid) - cpu0,
        machine_busy=(machine_busy_s() - busy0) / wall / (os.cpu_count() or 1),
        peak_engine_mib=sampler.peak_tree_rss_kib / 1024,
        up_alone_s=min(ups) if ups else float("nan"),
    )


def delete_all(c: httpx.Client) -> None:
    for item in c.get("/api/deployments").json():
        c.post("/api/deployments/delete", json={"deployment_name": item["name"]})
    deadline = time.monotonic() + 600
    while c.get("/api/deployments").json():
        if time.monotonic() > deadline:
            raise SystemExit("the deletes did not finish")
        time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creates", type=int, default=10)
    parser.add_argument("--workers", default="4,16", help="SHIPSTACK_WORKERS values to run with")
    args = parser.parse_args()
    root = common.scratch("creates")
    results: list[tuple[int, Run, Run]] = []
    with common.cluster_at(root) as kubeconfig:
        for workers in (int(w) for w in args.workers.split(",")):
            env = common.service_env(root / f"w{workers}", kubeconfig, SHIPSTACK_WORKERS=str(workers))
            _, key = common.make_user(env, "bench")
            with common.ServiceProcess(env) as service, service.client(key) as c:
                creates(c, service, "warm", 1)  # the first operation of a process builds its workspace
                delete_all(c)
                one = creates(c, service, "one", 1)
                common.log(f"workers={workers}: one create {one.wall_s:.1f} s")
                many = creates(c, service, "many", args.creates)
                common.log(f"workers={workers}: {args.creates} creates {many.wall_s:.1f} s")
                delete_all(c)
            results.append((workers, one, many))
    print(f"\n{os.cpu_count()} cores; one user's creates of nginx; service, cluster and client on one machine")
    print(f"{'SHIPSTACK_WORKERS':>17} | {'creates':>7} | {'wall':>7} | {'vs one':>6} | {'pulumi at once':>14} | "
          f"{'CPU pulumi+provider':>19} | {'machine busy':>12} | {'peak RSS engine':>15}")  # fmt: skip
    for workers, one, many in results:
        for run in (one, many):
            print(f"{workers:>17} | {run.creates:>7} | {run.wall_s:5.1f} s | {run.wall_s / one.wall_s:5.2f}x | "
                  f"{run.most_at_once:>14} | {run.engine_cpu_s:17.1f} s | {100 * run.machine_busy:11.0f} % | "
                  f"{run.peak_engine_mib:11.0f} MiB")  # fmt: skip
        print(f"{'':>17}   (the bare engine: the create's pulumi up alone took {one.up_alone_s:.1f} s)")
    for workers, one, many in results:
        ratio = many.wall_s / one.wall_s
        print(f"goal with SHIPSTACK_WORKERS={workers}: {args.creates} at once within 2x one: {ratio:.2f}x "
              f"({'met' if ratio <= 2 else 'NOT met'})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
