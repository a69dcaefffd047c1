"""Does a stack's history slow its updates down? `up` and `destroy` of one nginx
deployment after 0, 100 and 500 earlier updates, on the file:// backend and on the
postgres:// backend (a throwaway PostgreSQL), before and after shipstack keeps the
backend's history short.

    .venv/bin/python bench/history_growth.py [--counts 0,100,500] [--rounds 3] [--backends file,postgres]

Starts its own local cluster (needs `make toolchain` first). For each backend and count
N, a fresh stack is created, given N earlier updates, updated `--rounds` times (a real
change each time: an env value) and destroyed; each `up` and the `destroy` is timed.

"before" is Pulumi's DIY backend as it comes: every update adds a history entry, a full
copy of the checkpoint beside it and a checkpoint backup, never pruned. "after" is
shipstack now: backups off (PULUMI_DIY_BACKEND_DISABLE_CHECKPOINT_BACKUPS) and the
history pruned to the newest stacks.history_prune.KEEP updates after each update.

The N earlier updates are made by copying the stack's own newest history entry,
checkpoint and backup under older timestamps (what N real updates of an unchanged
nginx leave, byte for byte but the time), because 500 real updates take most of an
hour per backend; `--real` makes them with real updates instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench.local import cluster_and_postgres
from programs.spec import DeploymentSpec
from stacks import backend_store, engine, history_prune, workspace
from stacks.settings import Settings

PASSPHRASE = "bench-history-passphrase"


@contextlib.contextmanager
def mode(before: bool) -> Iterator[None]:
    """`before`: the backend as Pulumi leaves it (backups on, nothing pruned)."""
    if not before:
        yield
        return
    env, prune = workspace.engine_env, history_prune.prune

    def with_backups(settings: object) -> dict[str, str]:
        out = env(settings)  # type: ignore[arg-type]
        out.pop("PULUMI_DIY_BACKEND_DISABLE_CHECKPOINT_BACKUPS", None)
        return out

    workspace.engine_env, history_prune.prune = with_backups, (lambda *a, **k: 0)  # type: ignore[assignment]
    try:
        yield
    finally:
        workspace.engine_env, history_prune.prune = env, prune  # type: ignore[assignment]


def grow(settings: Settings, name: str, count: int) -> None:
    """`count` earlier updates, copied from the stack's newest ones under older times."""
    url = settings.engine.backend_url
    store = backend_store.store_for(url)
    assert store is not None
    copies: list[tuple[str, str]] = []  # (new key, source key)
    for prefix in (backend_store.history_prefix(name), backend_store.backups_prefix(name)):
        keys = store.keys(prefix)
        if not keys:
            continue
        newest = max(history_prune._stamp(k) for k in keys)
        sources = [k for k in keys if history_prune._stamp(k) == newest]
        for i in range(1, count + 1):
            older = str(newest - i * 1_000_000_000)
            copies += [(k.replace(str(newest), older), k) for k in sources]
    if isinstance(store, backend_store.FileStore):
        for new, source in copies:
            (store.root / new).write_bytes((store.root / source).read_bytes())
        return
    assert isinstance(store, backend_store.PostgresStore)
    with psycopg.connect(store.conninfo, autocommit=True) as conn, conn.cursor() as cur:
        insert = "INSERT INTO pulumi_state (key, data) SELECT %s, data FROM pulumi_state WHERE key = %s"
        cur.executemany(insert, [(store.prefix + new, store.prefix + old) for new, old in copies])


def footprint(settings: Settings, name: str) -> tuple[int, int]:
    """(objects, bytes) of the stack's history and backups in the backend."""
    store = backend_store.store_for(settings.engine.backend_url)
    assert store is not None
    keys = [k for p in (backend_store.history_prefix(name), backend_store.backups_prefix(name)) for k in store.keys(p)]
    return len(keys), sum(len(store.read(k) or b"") for k in keys)


def history_listing(settings: Settings, name: str) -> float:
    """Seconds of `pulumi stack history --page-size 1` (what the Automation API's own
    `up()` runs after every update, and a person's first look at a stack)."""
    t0 = time.perf_counter()
    engine._stack(settings, name).history(page_size=1, show_secrets=False)
    return time.perf_counter() - t0


def spec_for(settings: Settings, name: str, i: int) -> DeploymentSpec:
    return DeploymentSpec(name=name, template="nginx", env={"ROUND": str(i)}, base_domain=settings.service.base_domain)


def measure(settings: Settings, name: str, count: int, rounds: int, real: bool) -> dict[str, float]:
    spec = spec_for(settings, name, 0)
    config = engine.render_config(settings, spec, None)
    engine.apply(settings, spec, "create nginx", config=config, create=True)
    if real:
        for i in range(count):
            spec = spec_for(settings, name, 1000 + i)
            config = engine.render_config(settings, spec, config)
            engine.apply(settings, spec, "grow", config=config)
    else:
        grow(settings, name, count)
    ups = []
    for i in range(rounds):
        spec = spec_for(settings, name, i + 1)
        config = engine.render_config(settings, spec, config)
        t0 = time.perf_counter()
        engine.apply(settings, spec, f"round {i}", config=config)
        ups.append(time.perf_counter() - t0)
    left, size = footprint(settings, name)
    listing = history_listing(settings, name)
    t0 = time.perf_counter()
    engine.destroy(settings, name, config)
    return {"first": ups[0], "up": statistics.median(ups), "destroy": time.perf_counter() - t0, "objects": left,
            "bytes": size, "history": listing}  # fmt: skip


def settings_for(root: Path, kubeconfig: Path, backend: str) -> Settings:
    env = {"SHIPSTACK_DATA": str(root), "KUBECONFIG": str(kubeconfig), "HOME": str(Path.home()),
           "PATH": os.environ["PATH"], "PULUMI_BACKEND_URL": backend,
           "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE}  # fmt: skip
    return Settings.from_env(env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="0,100,500")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="file,postgres")
    parser.add_argument("--modes", default="before,after")
    parser.add_argument("--real", action="store_true", help="make the earlier updates with real updates")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    rows = []
    with cluster_and_postgres("shipstack-bench-history-") as (root, cluster, pg):
        backends = {"file": f"file://{root / 'state'}",
                    "postgres": f"postgres://shipstack:pass@127.0.0.1:{pg.port}/shipstack?sslmode=disable"}  # fmt: skip
        for backend in args.backends.split(","):
            for label in args.modes.split(","):
                # A data folder per mode: workspaces are cached per engine settings.
                settings = settings_for(root / f"{backend}-{label}", cluster.kubeconfig_path, backends[backend])
                with mode(before=label == "before"):
                    for count in counts:
                        figures = measure(settings, f"hist-{label}-{count}", count, args.rounds, args.real)
                        rows.append((backend, label, count, figures))
                        print(f"  {backend:8} {label:6} N={count:3}: {figures}", flush=True)
    how = "real updates" if args.real else "copies of the newest update"
    print(f"\nup and destroy of one nginx deployment after N earlier updates ({how}); "
          f"up: median of {args.rounds} updates (first one in brackets); seconds")  # fmt: skip
    print(f"{'backend':9} {'history':7} {'N':>4} {'up':>12} {'destroy':>8} {'history -1':>10} {'objects':>8} "
          f"{'MB':>6}")  # fmt: skip
    for backend, label, count, f in rows:
        print(f"{backend:9} {label:7} {count:4} {f['up']:5.2f} ({f['first']:4.2f}) {f['destroy']:8.2f} "
              f"{f['history']:10.2f} {int(f['objects']):8} {f['bytes'] / 1e6:6.1f}")  # fmt: skip
    print(
        "history -1: `pulumi stack history --page-size 1`; objects, MB: the stack's history and backups in the "
        "backend before the destroy"
    )


if __name__ == "__main__":
    main()
