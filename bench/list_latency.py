"""Read latency of the deployments list with 1,000 deployments, over HTTP, one request
at a time, beside the read path alone (the query and the JSON encoding, in this
process).

    .venv/bin/python bench/list_latency.py [--rows 1000] [--requests 500]

Runs the service under uvicorn in a child process as an API-only process
(SHIPSTACK_ROLE=api: no runner, no scheduler; the read path is what is measured),
with a fresh SQLite database holding `--rows` deployments of one user: Ready, each
with its ingress, its stack config of record (a real one, kilobytes, as the runner
stores it) and every tenth with a drift record. Then, sequentially over one
keep-alive connection: the whole list, pages of 100 (following the `Link` header
from the first page to the last) and one deployment's status. No cluster needed.
Goal (issue 13): the whole list p99 <= 20 ms, a page of 100 p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.auth.principal import Principal
from api.deployments import reads
from bench.common import ServiceProcess, database_url, log, make_user, pct, scratch, service_env
from persistence.base import utcnow
from persistence.db import make_engine, session_factory
from persistence.drift import DriftStatus
from persistence.models import Deployment
from programs.spec import DeploymentSpec
from stacks import engine
from stacks.settings import Settings

NEXT = re.compile(r'<([^>]+)>; rel="next"')


def seed(env: dict[str, str], user_id: int, rows: int) -> None:
    settings = Settings.from_env(env)
    spec = DeploymentSpec(name="row", template="nginx", base_domain=settings.service.base_domain, env={"A": "1"})
    config = engine.render_config(settings, spec, None)  # one real config of record, kilobytes, for every row
    db_engine = make_engine(database_url(env))
    with session_factory(db_engine)() as db:
        for i in range(rows):
            name = f"row-{i:05d}"
            host = f"{name}.{settings.service.base_domain}"
            db.add(Deployment(
                name=name, owner_user_id=user_id, template="nginx", status="Ready", visibility="public",
                image="nginx:1.27", ingresses=[{"id": "nginx", "name": "nginx", "host": host, "url": f"https://{host}"}],
                stack_config=config, revision=1,
            ))  # fmt: skip
        db.flush()
        for row_id in range(1, rows + 1, 10):
            db.add(DriftStatus(deployment_id=row_id, checked_at=utcnow(), drifted=False, objects=[],
                               operation_id="00000000-0000-0000-0000-000000000000"))  # fmt: skip
        db.commit()
    db_engine.dispose()


def timed(call: Callable[[], object], count: int) -> list[float]:
    call()  # warm
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def in_process(env: dict[str, str], user_id: int, count: int) -> tuple[list[float], list[float]]:
    """The read path alone: `reads.list_page` (query + encoding) on the same database,
    in a process whose start-up objects are frozen as the service's are."""
    gc.collect()
    gc.freeze()
    db_engine = make_engine(database_url(env))
    sessions = session_factory(db_engine)
    principal = Principal(user_id=user_id, user_name="bench", is_admin=False, tier="free",
                          scopes=frozenset({"deployments:read"}), teams={}, via="key")  # fmt: skip

    def page(limit: int | None) -> Callable[[], object]:
        def go() -> object:
            with sessions() as db:
                return reads.list_page(db, principal, None, limit=limit, after=None)

        return go

    whole, hundred = timed(page(None), count), timed(page(100), count)
    db_engine.dispose()
    return whole, hundred


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    root = scratch("list")
    # No cluster: a kubeconfig of a real one's size, sealed into every config of record as the runner does.
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(f"client-key-data: {base64.b64encode(os.urandom(4500)).decode()}\n")
    env = service_env(root, kubeconfig, SHIPSTACK_ROLE="api")
    user_id, key = make_user(env, "bench")
    log(f"seeding {args.rows} deployments")
    seed(env, user_id, args.rows)
    bare_whole, bare_page = in_process(env, user_id, args.requests)
    with ServiceProcess(env) as service, service.client(key) as c:
        assert len(c.get("/api/deployments").json()) == args.rows
        whole = timed(lambda: c.get("/api/deployments").raise_for_status(), args.requests)
        pages: list[float] = []
        walks = 0
        while len(pages) < args.requests:
            url: str | None = "/api/deployments?limit=100"
            seen = 0
            while url:
                t0 = time.perf_counter()
                r = c.get(url).raise_for_status()
                pages.append(time.perf_counter() - t0)
                seen += len(r.json())
                match = NEXT.match(r.headers.get("link", ""))
                url = match.group(1) if match else None
            assert seen == args.rows, seen
            walks += 1
        status = timed(lambda: c.get("/api/deployments/status?name=row-00500").raise_for_status(), args.requests)
        size = len(c.get("/api/deployments").content)

    ms = 1000
    print(f"\n{args.rows} deployments (SQLite), one request at a time over HTTP (uvicorn, keep-alive); "
          f"{os.cpu_count()} cores; the client on the same machine")  # fmt: skip
    print(f"{'read':28} | {'p50':>8} | {'p99':>8} | {'goal p99':>8} | read path alone (query + JSON) p50 / p99")
    rows = [
        ("whole list", whole, 20, bare_whole),
        ("page of 100 (limit=100)", pages, 5, bare_page),
        ("one deployment's status", status, None, None),
    ]
    for label, times, goal, bare in rows:
        alone = f"{pct(bare, 0.5) * ms:.1f} / {pct(bare, 0.99) * ms:.1f} ms" if bare else ""
        goal_text = f"{goal} ms" if goal else ""
        p50, p99 = pct(times, 0.5) * ms, pct(times, 0.99) * ms
        print(f"{label:28} | {p50:5.1f} ms | {p99:5.1f} ms | {goal_text:>8} | {alone}")
    print(f"({len(whole)} whole lists of {size / 1024:.0f} KiB; {len(pages)} pages in {walks} walks of the Link "
          "headers from the first page to the last)")  # fmt: skip
    met = pct(whole, 0.99) * ms <= 20 and pct(pages, 0.99) * ms <= 5
    print(f"goal: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
