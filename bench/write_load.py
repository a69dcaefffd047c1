"""Writes that pile up, and reads while writes run: a burst of config writes to one
deployment, then readers and writers together for a minute, service and cluster on
this machine.

    .venv/bin/python bench/write_load.py [--burst 50] [--readers 45] [--writers 5] [--seconds 60]
                                         [--think 0.5] [--write-every 1.0] [--skip-burst] [--in-process]

Starts its own local cluster (or uses $KUBECONFIG) and the service as `make run`
does, `python -m api serve` on its defaults: the API process, and the operations in
its child worker process at nice 10, on one SQLite database (with `--in-process`,
SHIPSTACK_WORKER_PROCESS=false: the operations' Python work in the API process),
creates one nginx deployment per writer, then:

1. Burst: `--burst` config writes to one deployment as fast as one client sends
   them; prints how many Pulumi updates ran (revisions), how long until every write
   was applied (from the first write to the last operation's `finishedAt`), and the
   `pulumi up` processes' own wall times beside it (the bare engine).
2. Load: `--readers` clients each read (list, status, config, operations of a
   deployment, in turn) and wait `--think` seconds, while `--writers` clients each
   change their own deployment's config every `--write-every` seconds, for
   `--seconds`. Prints read p50/p99 per route and overall, 5xx answers, writes
   accepted and refused (429 when a deployment already has 50 waiting), lost
   writes (an accepted write whose operation did not succeed, or a deployment
   whose config in force is not its last accepted write) and the drain time: from
   the end of the load until the last accepted write was applied.

Goals (issue 13): a burst costs a few updates; read p99 <= 100 ms under the load;
drained within 30 s; no 5xx, no lost write.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from toolchain.processes import ProcessSampler


@dataclass
class Burst:
    writes: int
    updates: int
    drain_s: float
    ups: list[float]


@dataclass
class Load:
    reads: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server_errors: int = 0
    other_errors: list[str] = field(default_factory=list)
    accepted: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))  # name -> (op, value)
    refused: int = 0


def revisions(c: httpx.Client, name: str) -> int:
    return len(c.get(f"/api/deployments/{name}/history").raise_for_status().json()["revisions"])


def burst(c: httpx.Client, name: str, count: int) -> Burst:
    before = revisions(c, name)
    with ProcessSampler(interval=0.05) as sampler:
        t0 = time.time()
        ids = []
        for i in range(count):
            r = c.put("/api/deployments/config", json={"deployment_name": name, "configData": {"B": str(i)}})
            ids.append(r.raise_for_status().json()["operationId"])
        ops = [common.wait_operation(c, op) for op in ids]
    failed = [op for op in ops if op["status"] != "succeeded"]
    if failed:
        raise SystemExit(f"{len(failed)} burst writes failed: {failed[0].get('error')}")
    ups = [s.wall_s(sampler.interval) for s in sampler.named("pulumi") if " up " in f"{s.cmdline} "]
    drain = max(common.finished_at(op) for op in ops) - t0
    return Burst(writes=count, updates=revisions(c, name) - before, drain_s=drain, ups=ups)


async def reader(http: httpx.AsyncClient, names: list[str], index: int, think: float, until: float, load: Load) -> None:
    name = names[index % len(names)]
    routes = [
        ("list", "/api/deployments"),
        ("status", f"/api/deployments/status?name={name}"),
        ("config", f"/api/deployments/config?name={name}"),
        ("operations", f"/api/deployments/{name}/operations"),
    ]
    turn = index
    await asyncio.sleep(think * index / 45)  # spread the readers' first requests
    while time.monotonic() < until:
        label, url = routes[turn % len(routes)]
        turn += 1
        t0 = time.perf_counter()
        try:
            r = await http.get(url)
        except httpx.HTTPError as exc:
            load.other_errors.append(f"{label}: {type(exc).__name__}")
            continue
        load.reads[label].append(time.perf_counter() - t0)
        if r.status_code >= 500:
            load.server_errors += 1
        elif r.status_code != 200:
            load.other_errors.append(f"{label}: {r.status_code}")
        await asyncio.sleep(think)


async def writer(http: httpx.AsyncClient, name: str, every: float, until: float, load: Load) -> None:
    n = 0
    while time.monotonic() < until:
        n += 1
        value = f"w{n}"
        try:
            r = await http.put("/api/deployments/config", json={"deployment_name": name, "configData": {"W": value}})
        except httpx.HTTPError as exc:
            load.other_errors.append(f"write: {type(exc).__name__}")
            continue
        if r.status_code == 200:
            load.accepted[name].append((r.json()["operationId"], value))
        elif r.status_code == 429:
            load.refused += 1
        elif r.status_code >= 500:
            load.server_errors += 1
        else:
            load.other_errors.append(f"write: {r.status_code} {r.text[:100]}")
        await asyncio.sleep(every)


async def run_load(service: common.ServiceProcess, key: str, names: list[str], args: argparse.Namespace) -> Load:
    load = Load()
    limits = httpx.Limits(max_connections=args.readers + args.writers + 5)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=service.base, headers=headers, timeout=60, limits=limits) as http:
        until = time.monotonic() + args.seconds
        tasks = [reader(http, names, i, args.think, until, load) for i in range(args.readers)]
        tasks += [writer(http, names[i % len(names)], args.write_every, until, load) for i in range(args.writers)]
        await asyncio.gather(*tasks)
    return load


def drain(c: httpx.Client, load: Load, ended: float) -> tuple[float, int]:
    """(seconds from `ended` until the last accepted write was applied, writes lost)."""
    last = ended
    lost = 0
    for name, writes in load.accepted.items():
        ops = [common.wait_operation(c, op, poll_s=0.5) for op, _ in writes]
        lost += sum(op["status"] != "succeeded" for op in ops)
        last = max([last, *(common.finished_at(op) for op in ops if op.get("finishedAt"))])
        in_force = c.get(f"/api/deployments/config?name={name}").json()["configData"].get("W")
        if writes and in_force != writes[-1][1]:
            lost += 1
            common.log(f"{name}: config in force {in_force!r}, last accepted write {writes[-1][1]!r}")
    return last - ended, lost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--readers", type=int, default=45)
    parser.add_argument("--writers", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think", type=float, default=0.5, help="seconds a reader waits between reads")
    parser.add_argument("--write-every", type=float, default=1.0, help="seconds a writer waits between writes")
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument("--in-process", action="store_true", help="the operations in the API process")
    args = parser.parse_args()
    root = common.scratch("load")
    with common.cluster_at(root) as kubeconfig:
        env = common.service_env(root, kubeconfig, **({"SHIPSTACK_WORKER_PROCESS": "false"} if args.in_process else {}))
        _, key = common.make_user(env, "bench")
        with (
            common.ServiceProcess(env, code=common.SERVE) as service,
            service.client(key) as c,
        ):
            names = [f"bench-w{i}" for i in range(max(1, args.writers))]
            for name in names:
                c.post("/api/deployments", json={"template": "nginx", "name": name}).raise_for_status()
            for name in names:
                common.wait_ready(c, name)
            common.log("deployments Ready")
            result = None if args.skip_burst else burst(c, names[0], args.burst)
            common.log("load starts")
            before = sum(revisions(c, n) for n in names)
            cpu0, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
            load = asyncio.run(run_load(service, key, names, args))
            ended = time.time()
            used = resource.getrusage(resource.RUSAGE_SELF)
            client_cpu = (used.ru_utime + used.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / (time.monotonic() - started)
            drain_s, lost = drain(c, load, ended)
            updates = sum(revisions(c, n) for n in names) - before
            for name in names:
                c.post("/api/deployments/delete", json={"deployment_name": name})
    report(args, result, load, (drain_s, lost, updates), client_cpu)
    return 0


def report(
    args: argparse.Namespace, result: Burst | None, load: Load, after: tuple[float, int, int], client_cpu: float
) -> None:
    drain_s, lost, updates = after
    ms = 1000
    service = "service, operations in the API process" if args.in_process else "service (API, child worker process)"
    print(f"\n{os.cpu_count()} cores; {service} (uvicorn, SQLite), local cluster and this client on one machine")
    if result is not None:
        ups = ", ".join(f"{u:.1f}" for u in result.ups)
        print(f"burst: {result.writes} config writes to one deployment -> {result.updates} Pulumi updates; "
              f"all applied {result.drain_s:.1f} s after the first write")  # fmt: skip
        print(f"       (the bare engine: the pulumi up processes alone took {ups} s)")
    everything = [t for times in load.reads.values() for t in times]
    accepted = sum(len(w) for w in load.accepted.values())
    print(f"load: {args.readers} readers (a read, then {args.think} s), {args.writers} writers (a config write, "
          f"then {args.write_every} s) for {args.seconds:.0f} s")  # fmt: skip
    print(f"      (this client, on the same cores, used {100 * client_cpu:.0f} % of one)")
    print(f"{'reads':12} | {'count':>6} | {'p50':>8} | {'p99':>8}")
    for label, times in [*sorted(load.reads.items()), ("all", everything)]:
        p50, p99 = common.pct(times, 0.5) * ms, common.pct(times, 0.99) * ms
        print(f"{label:12} | {len(times):6} | {p50:5.1f} ms | {p99:5.1f} ms")
    kinds = sorted(set(load.other_errors))[:5]
    print(f"5xx answers: {load.server_errors}; other errors: {len(load.other_errors)} {kinds}")
    print(f"writes accepted {accepted}, refused with 429 {load.refused}, applied by {updates} Pulumi updates; "
          f"lost writes: {lost}")  # fmt: skip
    print(f"drained {drain_s:.1f} s after the load ended (goal: 30 s)")
    met = common.pct(everything, 0.99) * ms <= 100 and drain_s <= 30 and lost == 0 and load.server_errors == 0
    print(f"goal (read p99 <= 100 ms, drained within 30 s, no 5xx, nothing lost): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
