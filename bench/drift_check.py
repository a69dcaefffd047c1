"""What one drift check costs, and how often checks could run for 1,000 deployments
on this machine.

    .venv/bin/python bench/drift_check.py [--checks 5] [--nginx 2] [--webapp 1]

Starts its own local cluster and data folder (needs `make toolchain` first), deploys
a few deployments through the real engine, then measures `stacks.drift.check` (a
refresh preview: `pulumi stack select` + `pulumi refresh --preview-only`, the
Kubernetes provider reading every object):

- wall time and CPU seconds of the processes it starts (pulumi and the provider,
  from the kernel's accounting of waited-for children) and of this process (the
  Automation API's event reading and gRPC server), one check at a time;
- the processes started per check (sampled from /proc every 20 ms, separate runs);
- throughput with 1, 2 and 4 checks at once (threads, as the runner's workers run
  them), on this machine's cores;
- one scheduler tick (scheduler/drift.py) over 1,000 deployments on SQLite;

and prints the shortest interval 1,000 deployments could be checked at.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from persistence.accounts import add_user
from persistence.base import utcnow
from persistence.db import make_engine, migrate, session_factory
from persistence.models import Deployment
from programs.spec import DeploymentSpec
from programs.templates import fill_generated_env, load_catalog
from scheduler.drift import DriftScheduler
from stacks import drift, engine
from stacks.settings import Settings
from toolchain.cluster import LocalCluster
from toolchain.processes import ProcessSampler

FLEET = 1000


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# Each deployment's stack config of record, as the service would keep it.
CONFIGS: dict[str, str] = {}


def one_check(settings: Settings, name: str) -> tuple[float, float, float, int]:
    """(wall s, children's CPU s, this process's CPU s, objects drifted)."""
    c0, s0, t0 = cpu(resource.RUSAGE_CHILDREN), cpu(resource.RUSAGE_SELF), time.perf_counter()
    report = drift.check(settings, name, CONFIGS[name])
    wall = time.perf_counter() - t0
    return wall, cpu(resource.RUSAGE_CHILDREN) - c0, cpu(resource.RUSAGE_SELF) - s0, len(report.objects)


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy (every process, the cluster's too)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def throughput(settings: Settings, names: list[str], parallel: int, total: int) -> tuple[float, float]:
    """Checks per second with `parallel` at once, and the machine's CPU seconds per check."""
    t0, m0 = time.perf_counter(), machine_cpu()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda i: drift.check(settings, (n := names[i % len(names)]), CONFIGS[n]), range(total)))
    return total / (time.perf_counter() - t0), (machine_cpu() - m0) / total


def scheduler_tick(root: Path) -> float:
    """Seconds of one drift tick over FLEET deployments (SQLite, a stack file each)."""
    data = root / "fleet"
    settings = Settings.from_env({"SHIPSTACK_DATA": str(data), "HOME": str(Path.home())})
    url = f"sqlite:///{data / 'shipstack.db'}"
    data.mkdir(parents=True)
    migrate(url)
    sessions = session_factory(make_engine(url), immediate=True)
    stacks = settings.engine.stacks_dir
    stacks.mkdir(parents=True, exist_ok=True)
    old = utcnow() - timedelta(minutes=30)  # none due yet: the steady state between checks
    with sessions() as s, s.begin():
        owner = add_user(s, "bench", password_hash=None).id
        for i in range(FLEET):
            s.add(Deployment(name=f"d{i:04}", owner_user_id=owner, template="nginx", status="Ready", created_at=old))
    for i in range(FLEET):
        config = {"config": {"shipstack:name": f"d{i:04}", "shipstack:drift": '{"interval_s":null,"policy":"report"}'}}
        (stacks / f"Pulumi.d{i:04}.yaml").write_text(yaml.safe_dump(config))
    ticker = DriftScheduler(settings, sessions)
    ticker.tick()  # the first reads every stack file; later ones only stat them
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        ticker.tick()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=5, help="sequential checks per deployment")
    parser.add_argument("--nginx", type=int, default=2, help="nginx deployments (10 objects each)")
    parser.add_argument("--webapp", type=int, default=1, help="webapp deployments (web + postgres, 16 objects)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shipstack-bench-drift-"))
    cluster = LocalCluster(root / "cluster")
    cluster.up(wait_metrics=False)
    try:
        settings = Settings.from_env(
            {"SHIPSTACK_DATA": str(root / "data"), "KUBECONFIG": str(cluster.kubeconfig_path), "HOME": str(Path.home())}
        )
        names = []
        for template, count in (("nginx", args.nginx), ("webapp", args.webapp)):
            for i in range(count):
                env = fill_generated_env(load_catalog()[template], {}, random.SystemRandom())  # the db password
                spec = DeploymentSpec(name=f"bench-{template}-{i}", template=template, env=env,
                                      base_domain=settings.service.base_domain)  # fmt: skip
                config = engine.render_config(settings, spec, None)
                engine.apply(settings, spec, f"create {template}", config=config, create=True)
                CONFIGS[spec.name] = config
                names.append(spec.name)
        drift.check(settings, names[0], CONFIGS[names[0]])  # warm: the first check of a process builds its workspace
        rows = [(name, *one_check(settings, name)) for name in names for _ in range(args.checks)]
        with ProcessSampler() as sampler:
            drift.check(settings, names[0], CONFIGS[names[0]])
        started = sorted(s.name for s in sampler.seen.values())
        measured = {k: throughput(settings, names, k, max(6, 2 * k * len(names))) for k in (1, 2, 4)}
        rates = {k: rate for k, (rate, _) in measured.items()}
    finally:
        cluster.down()
    tick_s = scheduler_tick(root)

    print(f"drift check: {len(rows)} checks of {len(names)} deployments, {os.cpu_count()} cores")
    for template in ("nginx", "webapp"):
        mine = [r for r in rows if f"-{template}-" in r[0]]
        if not mine:
            continue
        wall, child, own = (statistics.median(r[i] for r in mine) for i in (1, 2, 3))
        print(f"  {template:7} median wall {wall:.2f} s, CPU {child:.2f} s in pulumi + provider, "
              f"{own:.2f} s in the service process; drifted objects found: {max(r[4] for r in mine)}")  # fmt: skip
    print(f"  processes per check: {len(started)} ({', '.join(started)})")
    for k, (rate, machine) in measured.items():
        print(f"  {k} at once: {rate:.2f} checks/s ({3600 * rate:.0f} per hour); the whole machine, the local "
              f"cluster's API server and etcd included, spent {machine:.2f} CPU s a check")  # fmt: skip
    cpu_per_check = statistics.median(r[2] + r[3] for r in rows)
    cores = os.cpu_count() or 1
    best = max(rates.values())
    period = settings.scheduler.drift_tick_s
    print(f"scheduler tick over {FLEET} deployments (SQLite): {tick_s * 1000:.0f} ms "
          f"({100 * tick_s / period:.1f} % of a core at one tick per {period:.0f} s)")  # fmt: skip
    print(f"{FLEET} deployments on this machine ({cores} cores):")
    print(f"  all cores, nothing else running: every {FLEET / best / 60:.0f} min (the best throughput above)")
    for k in (2, 4):
        # The scheduler queues at most k checks a tick: that, or the machine, is the limit.
        rate = min(rates[k], k / period)
        print(f"  SHIPSTACK_DRIFT_CONCURRENCY={k}: every {FLEET / rate / 60:.0f} min at the earliest")
    # The machine's figure, the API server's work for the provider's reads included.
    cpu_per_check = max(cpu_per_check, measured[1][1])
    quarter = FLEET * cpu_per_check / (cores * 0.25)
    hourly = 100 * FLEET * cpu_per_check / 3600 / cores
    print(f"  a quarter of the CPU for drift ({cpu_per_check:.2f} CPU s a check): every {quarter / 60:.0f} min")
    print(f"  the default SHIPSTACK_DRIFT_INTERVAL=3600 takes {hourly:.0f} % of the machine")


if __name__ == "__main__":
    main()
