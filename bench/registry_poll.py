"""Registry requests per auto-update poll, and the poll's wall time, for 1,000
deployments over 50 repositories, against a real registry on loopback.

    .venv/bin/python bench/registry_poll.py [--deployments 1000] [--repositories 50] [--token]

Starts distribution's `registry` (toolchain/build.sh builds it) in a scratch
folder, pushes ~13 tags per repository through the registry API, writes 1,000
stack config files (policies: 70 % patch, 20 % minor, 10 % digest on `latest`)
and deployment rows into a scratch SQLite database, then runs the real poller:

- a cold poll (every deployment due; updates queued);
- a second poll after the updates were applied (written into the stack configs as
  the runner would), everything forced due again;
- a third poll with nothing due (the per-deployment intervals have not passed);
- the naive way for comparison: one tag-list request per deployment, as a poller
  without grouping makes.

`--token` puts the registry behind token auth (anonymous pull tokens) to show
what the token cache saves.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
import yaml
from sqlalchemy import update

from persistence.accounts import add_user
from persistence.db import make_engine, migrate, session_factory
from persistence.models import Deployment, Operation
from programs.spec import AutoUpdate
from scheduler.poll import Poller, PollReport
from scheduler.registry import ClientOptions, RegistryClient, repository_of
from stacks.settings import Settings
from toolchain.registry.local import LocalRegistry, TokenServer, push_image

TAGS = [f"1.0.{i}" for i in range(10)] + ["1.1.0", "2.0.0", "latest"]


def seed_registry(reg: LocalRegistry, repositories: int) -> float:
    """Pushes every tag of every repository (no auth); returns the seconds it took."""
    t = time.perf_counter()
    for r in range(repositories):
        for tag in TAGS:
            push_image(reg.url, f"bench/app{r:02d}", tag, f"app{r}:{tag}")
    return time.perf_counter() - t


def write_deployments(settings: Settings, sessions, host: str, deployments: int, repositories: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    stacks = Path(settings.engine.stacks_dir)
    stacks.mkdir(parents=True, exist_ok=True)
    with sessions() as s, s.begin():
        user = add_user(s, "bench", password_hash=None)
        for i in range(deployments):
            repo = f"{host}/bench/app{i % repositories:02d}"
            roll = rng.random()
            if roll < 0.7:
                auto, image = AutoUpdate(enabled=True, policy="patch"), f"{repo}:1.0.{rng.randrange(10)}"
            elif roll < 0.9:
                auto, image = AutoUpdate(enabled=True, policy="minor"), f"{repo}:1.0.{rng.randrange(10)}"
            else:
                auto, image = AutoUpdate(enabled=True, policy="digest"), f"{repo}:latest"
            name = f"bench-{i:04d}"
            s.add(Deployment(name=name, owner_user_id=user.id, template="image", image=image, status="Ready"))
            config = {
                "shipstack:name": name,
                "shipstack:template": "image",
                "shipstack:image": image,
                "shipstack:strategy": "rolling",
                "shipstack:autoUpdate": msgspec.json.encode(auto, order="sorted").decode(),
                "shipstack:env": {"secure": "v1:AAAA:BBBB"},
            }
            (stacks / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"encryptionsalt": "v1:x:y", "config": config}))


def apply_updates(settings: Settings, sessions, report: PollReport) -> None:  # type: ignore[no-untyped-def]
    """What the runner would do: write each queued image into its stack config."""
    stacks = Path(settings.engine.stacks_dir)
    for u in report.updates:
        path = stacks / f"Pulumi.{u.deployment}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["config"]["shipstack:image"] = u.image
        path.write_text(yaml.safe_dump(doc))
    with sessions() as s, s.begin():
        s.execute(update(Operation).values(status="succeeded", payload=None))


def show(label: str, report: PollReport) -> None:
    print(
        f"{label:<28} {report.wall_s:7.2f} s  {report.requests:5d} requests "
        f"({report.tag_pages} tag lists, {report.manifest_heads} HEADs, {report.token_requests} tokens)  "
        f"{report.due} due, {report.repositories} repositories, {len(report.updates)} updates queued"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--repositories", type=int, default=50)
    parser.add_argument("--token", action="store_true", help="registry behind token auth (anonymous pull)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="shipstack-bench-registry-"))
    # Seed without auth, then restart the same storage behind token auth if asked.
    with LocalRegistry(root / "registry") as reg:
        seeded = seed_registry(reg, args.repositories)
        port = reg.port
    token = TokenServer({}, anonymous_pull=True, ttl_s=300).start() if args.token else None
    reg = LocalRegistry(root / "registry", token=token)
    reg.port = port
    reg.start()
    try:
        url = f"sqlite:///{root / 'shipstack.db'}"
        migrate(url)
        engine = make_engine(url)
        sessions = session_factory(engine, immediate=True)
        settings = Settings.from_env({"SHIPSTACK_DATA": str(root / "data"), "SHIPSTACK_DATABASE_URL": url})
        write_deployments(settings, sessions, reg.host, args.deployments, args.repositories)

        print(
            f"{args.deployments} deployments over {args.repositories} repositories, {len(TAGS)} tags each "
            f"(seeded in {seeded:.1f} s); registry {'behind token auth' if token else 'anonymous'} on {reg.host}"
        )
        with RegistryClient(ClientOptions.from_env(reg.client_env())) as client:
            poller = Poller(settings, sessions, client, poll_interval_s=300)
            cold = poller.poll()
            show("poll 1 (cold)", cold)
            apply_updates(settings, sessions, cold)
            warm = poller.poll(force=True)
            show("poll 2 (updates applied)", warm)
            idle = poller.poll()
            show("poll 3 (nothing due)", idle)

        with RegistryClient(ClientOptions.from_env(reg.client_env())) as naive:
            t = time.perf_counter()
            with sessions() as s:
                images = [d.image for d in s.query(Deployment).order_by(Deployment.name)]
            for image in images:
                naive.list_tags(repository_of(image))
            naive_s = time.perf_counter() - t
            print(
                f"{'naive (list per deployment)':<28} {naive_s:7.2f} s  {naive.stats.requests:5d} requests "
                f"({naive.stats.tag_pages} tag lists, {naive.stats.token_requests} tokens), before any HEAD"
            )
        per_poll = cold.requests / max(1, cold.due)
        print(f"requests per deployment per poll: {per_poll:.3f} (grouped) vs >= 1 (naive)")
        engine.dispose()
    finally:
        reg.stop()
        if token is not None:
            token.stop()


if __name__ == "__main__":
    main()
