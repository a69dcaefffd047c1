"""Memory: one operation's process tree, and the service holding 1,000 deployments
and 100 open log streams.

    .venv/bin/python bench/memory.py [--rows 1000] [--streams 100]

Starts its own local cluster (or uses $KUBECONFIG) and the service under uvicorn in a
child process, then:

1. One operation: after a warm-up create (the service's first operation loads the
   engine's Python modules once), a create and a config change of one nginx
   deployment, sampling every 50 ms the resident memory of the pulumi CLI, the
   Kubernetes provider and the service process, whose threads serve the inline
   program to the CLI. Prints each one's peak, and the peak of their sum: the
   operation's process tree. The bare engine beside it: the CLI and provider alone.
2. The service with `--rows` deployments (rows in its database, as the list and
   status read them: every one Ready, with its ingress and config of record; the
   real nginx deployment among them) and `--streams` log streams open on the real
   deployment (bench/log_streams.py's client): the service's RSS idle, after reading
   the whole list, and with the streams open.

Scheduled drift checks are off (SHIPSTACK_DRIFT_INTERVAL=0): the rows are not
stacks, and a check of each would measure the engine, not the service.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from bench import common, list_latency, log_streams
from toolchain.processes import ProcessSampler

ENGINE = ("pulumi", "pulumi-resource-kubernetes")


def operation_memory(service: common.ServiceProcess, run: Callable[[], None]) -> dict[str, float]:
    """Peak RSS (MiB) of the CLI, the provider, the service and of their sum while `run()` runs."""
    with ProcessSampler(interval=0.05, include=(service.pid,)) as sampler:
        run()
    peaks = {name: max((s.peak_rss_kib for s in sampler.named(name)), default=0) / 1024 for name in ENGINE}
    peaks["service"] = sampler.seen[service.pid].peak_rss_kib / 1024
    peaks["tree"] = sampler.peak_tree_rss_kib / 1024
    return peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=100)
    args = parser.parse_args()
    root = common.scratch("memory")
    with common.cluster_at(root) as kubeconfig:
        env = common.service_env(root, kubeconfig, SHIPSTACK_DRIFT_INTERVAL="0")
        user_id, key = common.make_user(env, "bench")
        list_latency.seed(env, user_id, args.rows - 1)
        # log_streams's server: the stream slots raised for one user's streams.
        with common.ServiceProcess(env, code=log_streams.SERVER, args=[str(args.streams * 2)]) as service:
            with service.client(key) as c:
                idle = common.rss_mib(service.pid)

                def create(name: str) -> None:
                    body = {"template": "nginx", "name": name}
                    common.wait_operation(
                        c, c.post("/api/deployments", json=body).raise_for_status().json()["operationId"]
                    )

                def change() -> None:
                    body = {"deployment_name": "mem-op", "configData": {"A": "2"}}
                    common.wait_operation(c, c.put("/api/deployments/config", json=body).json()["operationId"])

                create("mem-warm")
                created = operation_memory(service, lambda: create("mem-op"))
                changed = operation_memory(service, change)
                common.wait_ready(c, "mem-op")
                assert len(c.get("/api/deployments").json()) == args.rows + 1
                listed = common.rss_mib(service.pid)
            api_port = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"].rsplit(":", 1)[1]
            stream_args = argparse.Namespace(steps=[args.streams], open_batch=25, settle=4.0, window=8.0)
            common.log(f"opening {args.streams} log streams")
            pids = {"service": service.pid}
            rows, *_ = asyncio.run(
                log_streams.run_bench(stream_args, service.base, key, ["mem-op"], pids, int(api_port))
            )
            with service.client(key) as c:
                for name in ("mem-op", "mem-warm"):
                    c.post("/api/deployments/delete", json={"deployment_name": name})
                time.sleep(1)
    report(args, created, changed, (idle, listed, rows[-1].rss_mb, rows[-1].streams))
    return 0


def report(
    args: argparse.Namespace, created: dict[str, float], changed: dict[str, float], service: tuple[float, ...]
) -> None:
    print(f"\n{os.cpu_count()} cores; peak resident memory (RSS), sampled every 50 ms")
    print(f"{'one operation':16} | {'pulumi CLI':>10} | {'provider':>8} | {'service process':>15} | "
          f"{'process tree':>12} | bare engine (CLI + provider)")  # fmt: skip
    for label, peaks in (("create nginx", created), ("config change", changed)):
        bare = peaks["pulumi"] + peaks["pulumi-resource-kubernetes"]
        print(f"{label:16} | {peaks['pulumi']:6.0f} MiB | {peaks['pulumi-resource-kubernetes']:4.0f} MiB | "
              f"{peaks['service']:11.0f} MiB | {peaks['tree']:8.0f} MiB | {bare:.0f} MiB")  # fmt: skip
    idle, listed, streaming, streams = service
    print(f"the service with {args.rows} deployments: {idle:.0f} MiB at start, {listed:.0f} MiB after the operations "
          f"and reading the whole list, {streaming:.0f} MiB with {streams} log streams open")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
