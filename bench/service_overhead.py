"""What the service costs on top of the engine, measured in one run.

    .venv/bin/python bench/service_overhead.py [--parallel 10] [--rows 1000]

Starts its own local cluster and data folder, then prints:
- create -> Ready through the service vs a bare `pulumi up` of the same program;
- a config update through the service vs a bare `up` with the new config;
- list and status latency (p50/p99) with N deployments in the database;
- 10 simultaneous creates vs one (wall time until all are Ready).
Needs `make toolchain` first. Everything it creates is destroyed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import msgspec
from litestar.testing import TestClient

from api.http.context import context_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.auth.credentials import new_api_key
from api.http.app import build_app
from persistence.accounts import add_user
from persistence.keys import add_key
from persistence.models import Deployment
from programs.spec import DeploymentSpec
from stacks import engine
from stacks.settings import Settings
from toolchain.cluster import LocalCluster


def wait_ready(client: TestClient, headers: dict, name: str) -> None:
    while True:
        r = client.get(f"/api/deployments/status?name={name}&wait=5", headers=headers)
        status = r.json()["status"]
        if status == "Ready":
            return
        if status == "Error":
            raise SystemExit(f"{name} failed: {r.json()}")


def wait_op(client: TestClient, headers: dict, op_id: str) -> None:
    while client.get(f"/api/operations/{op_id}", headers=headers).json()["status"] not in ("succeeded", "failed"):
        time.sleep(0.2)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shipstack-bench-"))
    cluster = LocalCluster(root / "cluster")
    cluster.up(wait_metrics=False)
    settings = Settings.from_env(
        {"SHIPSTACK_DATA": str(root / "data"), "KUBECONFIG": str(cluster.kubeconfig_path), "HOME": str(Path.home())}
    )
    settings = msgspec.structs.replace(
        settings, service=msgspec.structs.replace(settings.service, workers=max(4, args.parallel))
    )
    try:
        # Bare engine: the same program and config, no service in between.
        spec = DeploymentSpec(
            name="bench-bare", template="nginx", base_domain=settings.service.base_domain, env={"A": "1"}
        )
        t = time.monotonic()
        created = engine.apply(settings, spec, "create nginx", previous=None, create=True)
        bare_create = time.monotonic() - t
        t = time.monotonic()
        updated = engine.apply(
            settings, msgspec.structs.replace(spec, env={"A": "2"}), "config", previous=created.config
        )
        bare_update = time.monotonic() - t
        engine.destroy(settings, "bench-bare", updated.config)

        app = build_app(settings)
        with TestClient(app, timeout=300) as client:
            with context_of(app.state).db.writes() as db, db.begin():
                user = add_user(db, "bench", password_hash=None)
                key, prefix, digest = new_api_key()
                add_key(db, prefix=prefix, secret_hash=digest, name="bench", user_id=user.id,
                        scopes=["deployments:read", "deployments:write"])  # fmt: skip
            h = {"Authorization": f"Bearer {key}"}

            t = time.monotonic()
            r = client.post("/api/deployments", json={"template": "nginx", "envVars": {"A": "1"}}, headers=h)
            name = r.json()["name"]
            wait_ready(client, h, name)
            svc_create = time.monotonic() - t
            t = time.monotonic()
            body = {"deployment_name": name, "configData": {"A": "2"}}
            r = client.put("/api/deployments/config", json=body, headers=h)
            wait_op(client, h, r.json()["operationId"])
            svc_update = time.monotonic() - t

            # N simultaneous creates vs the single one above.
            t = time.monotonic()
            names = [
                client.post("/api/deployments", json={"template": "nginx"}, headers=h).json()["name"]
                for _ in range(args.parallel)
            ]
            for n in names:
                wait_ready(client, h, n)
            parallel = time.monotonic() - t

            # Read latency with many rows.
            with context_of(app.state).db.writes() as db, db.begin():
                for i in range(args.rows):
                    db.add(Deployment(name=f"row-{i:05d}", owner_user_id=user.id, template="nginx", status="Ready",
                                      ingresses=[]))  # fmt: skip
            list_t, status_t = [], []
            for i in range(200):
                t = time.monotonic()
                client.get("/api/deployments", headers=h)
                list_t.append(time.monotonic() - t)
                t = time.monotonic()
                client.get(f"/api/deployments/status?name=row-{i:05d}", headers=h)
                status_t.append(time.monotonic() - t)

            for n in [name, *names]:
                client.post("/api/deployments/delete", json={"deployment_name": n}, headers=h)
            while any(client.get(f"/api/deployments/status?name={n}", headers=h).status_code != 404
                      for n in [name, *names]):  # fmt: skip
                time.sleep(1)
    finally:
        cluster.down()

    for label, svc, bare in (("create -> Ready", svc_create, bare_create), ("config update", svc_update, bare_update)):
        print(f"{label:16} service {svc:.1f} s, bare up {bare:.1f} s, ratio {svc / bare:.2f}")
    print(f"{args.parallel} simultaneous creates -> all Ready: {parallel:.1f} s (one: {svc_create:.1f} s)")
    print(f"list with {args.rows + 1} deployments: p50 {pct(list_t, 0.5):.1f} ms, p99 {pct(list_t, 0.99):.1f} ms")
    print(f"status with {args.rows + 1} deployments: p50 {pct(status_t, 0.5):.1f} ms, p99 {pct(status_t, 0.99):.1f} ms")
    print(f"(mean list {statistics.mean(list_t) * 1000:.1f} ms over {len(list_t)} requests)")


if __name__ == "__main__":
    main()
