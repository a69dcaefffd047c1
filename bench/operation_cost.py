"""What one operation on one nginx deployment costs through the service, beside the
pulumi command it runs.

    .venv/bin/python bench/operation_cost.py [--rounds 3]

Starts its own local cluster (or uses $KUBECONFIG) and the service under uvicorn in a
child process, then runs create, config change, restart and preview over HTTP, one at
a time, and for each prints:

- the pulumi processes it started (every process below the bench, sampled from /proc
  every 20 ms; the service's own threads are not processes);
- the CPU seconds of pulumi and its provider (the kernel's accounting of the children
  the service waited for) and of the service process itself (the inline program, the
  engine event reader, the database);
- the wall time, from sending the request to the operation's `finishedAt` (a
  preview: to its answer);
- the wall time of the `pulumi up` (`pulumi preview`) process alone: the bare engine.

A warm-up deployment is created first: the service's first operation also builds the
workspace and derives the passphrase key once, which is no per-operation cost.
Meanwhile every command line on the machine is checked for the operation's secrets
(an env value, the kubeconfig's client key). Goal (issue 13): a config change within
1.15x its `pulumi up` and at most 0.8 CPU seconds.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from toolchain.processes import ProcessSampler, children_cpu_s, read_stat

ENGINE = ("pulumi", "pulumi-resource-kubernetes")


@dataclass
class Measured:
    operation: str
    processes: list[str]
    engine_cpu_s: float
    service_cpu_s: float
    wall_s: float
    command_s: float
    leaks: list[tuple[int, str, str]]


def kubeconfig_secrets(path: Path) -> dict[str, str]:
    """The client key of the kubeconfig, as the file has it (base64) and as PEM lines."""
    encoded = yaml.safe_load(path.read_text())["users"][0]["user"]["client-key-data"]
    pem = base64.b64decode(encoded).decode().splitlines()
    return {"kubeconfig client key (base64)": encoded[40:100], "kubeconfig client key (PEM)": pem[2]}


def measure(
    operation: str,
    service: common.ServiceProcess,
    secrets: dict[str, str],
    run: Callable[[], float | None],
    command: str,
) -> Measured:
    """Runs `run` (which answers when its operation finished, or None: when it returned)."""
    cpu0 = children_cpu_s(service.pid)
    own0 = read_stat(service.pid).cpu_s  # type: ignore[union-attr]
    with ProcessSampler(secrets=secrets) as sampler:
        t0 = time.time()
        end = run() or time.time()
        wall = end - t0
        time.sleep(0.1)  # the provider exits just after the CLI has answered
    started = sorted(s.name for s in sampler.seen.values())
    commands = [s for s in sampler.named("pulumi") if f" {command} " in f"{s.cmdline} "]
    return Measured(
        operation=operation,
        processes=started,
        engine_cpu_s=children_cpu_s(service.pid) - cpu0,
        service_cpu_s=read_stat(service.pid).cpu_s - own0,  # type: ignore[union-attr]
        wall_s=wall,
        command_s=sum(s.wall_s(sampler.interval) for s in commands),
        leaks=sampler.leaks,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="config changes, restarts and previews measured")
    args = parser.parse_args()
    root = common.scratch("ops")
    rows: list[Measured] = []
    with common.cluster_at(root) as kubeconfig:
        env = common.service_env(root, kubeconfig)
        _, key = common.make_user(env, "bench")
        secret_values = [f"s3cret-value-{i}-{os.urandom(6).hex()}" for i in range(2 * args.rounds + 3)]
        secrets = kubeconfig_secrets(kubeconfig)
        with common.ServiceProcess(env) as service, service.client(key) as c:

            def create(name: str, value: str) -> Callable[[], float]:
                def go() -> float:
                    body = {"template": "nginx", "name": name, "envVars": {"GREETING": value}}
                    op = c.post("/api/deployments", json=body).raise_for_status().json()["operationId"]
                    return done(common.wait_operation(c, op))

                return go

            def config(value: str) -> Callable[[], float]:
                def go() -> float:
                    body = {"deployment_name": "bench-op", "configData": {"GREETING": value}}
                    return done(
                        common.wait_operation(c, c.put("/api/deployments/config", json=body).json()["operationId"])
                    )

                return go

            def restart() -> float:
                op = c.post("/api/deployments/restart", json={"deployment_name": "bench-op"}).json()["operationId"]
                return done(common.wait_operation(c, op))

            def preview(value: str) -> Callable[[], None]:
                def go() -> None:
                    r = c.post("/api/deployments/bench-op/preview", json={"configData": {"GREETING": value}})
                    if r.status_code != 200:
                        raise SystemExit(f"preview failed: {r.status_code} {r.text}")

                return go

            values = iter(secret_values)
            warm = measure("first create after start", service, {}, create("bench-warm", next(values)), "up")
            common.log(f"warm-up: {warm}")
            value = next(values)
            rows.append(measure("create", service, {**secrets, "env": value}, create("bench-op", value), "up"))
            for _ in range(args.rounds):
                value = next(values)
                rows.append(measure("config change", service, {**secrets, "env": value}, config(value), "up"))
                rows.append(measure("restart", service, secrets, restart, "up"))
                value = next(values)
                rows.append(measure("preview", service, {**secrets, "env": value}, preview(value), "preview"))
            for name in ("bench-op", "bench-warm"):
                c.post("/api/deployments/delete", json={"deployment_name": name})
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and c.get("/api/deployments").json():
                time.sleep(1)
    report(rows, warm)
    return 0


def done(op: dict) -> float:
    """When a succeeded operation finished."""
    if op["status"] != "succeeded":
        raise SystemExit(f"operation failed: {op.get('error')}")
    return common.finished_at(op)


def report(rows: list[Measured], warm: Measured) -> None:
    print(f"\none nginx deployment, one operation at a time; {os.cpu_count()} cores; medians of the rounds")
    head = f"{'operation':16} | {'pulumi processes':46} | {'CPU pulumi+provider':>19} | {'CPU service':>11} | "
    print(head + f"{'wall':>7} | {'the up alone':>12} | ratio")
    for operation in dict.fromkeys(r.operation for r in rows):
        mine = [r for r in rows if r.operation == operation]
        names = [n for n in mine[0].processes if n in ENGINE]
        others = [n for n in mine[0].processes if n not in ENGINE]
        label = f"{len(names)}: {', '.join(names)}" + (f" (+ {', '.join(others)})" if others else "")
        cpu, own, wall, alone = (statistics.median(getattr(r, f) for r in mine)
                                 for f in ("engine_cpu_s", "service_cpu_s", "wall_s", "command_s"))  # fmt: skip
        print(f"{operation:16} | {label:46} | {cpu:>17.2f} s | {own:>9.2f} s | {wall:>5.2f} s | {alone:>10.2f} s | "
              f"{wall / alone:.2f}x")  # fmt: skip
    started = ", ".join(warm.processes)
    print(f"(the service's first operation after start: {warm.wall_s:.2f} s wall, {warm.engine_cpu_s:.2f} CPU s "
          f"in pulumi + provider, {warm.service_cpu_s:.2f} s in the service; processes: {started})")  # fmt: skip
    changes = [r for r in rows if r.operation == "config change"]
    ratio = statistics.median(r.wall_s / r.command_s for r in changes)
    cpu = statistics.median(r.engine_cpu_s for r in changes)
    print(f"goal: config change wall <= 1.15x its pulumi up: {ratio:.2f}x ({'met' if ratio <= 1.15 else 'NOT met'}); "
          f"CPU <= 0.8 s: {cpu:.2f} s ({'met' if cpu <= 0.8 else 'NOT met'})")  # fmt: skip
    leaks = sorted({(name, label) for r in rows for _, name, label in r.leaks})
    print(f"secrets on a command line while the operations ran: {leaks or 'none'}")


if __name__ == "__main__":
    sys.exit(main())
