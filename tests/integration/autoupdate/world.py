"""What the auto-update integration tests share: a database with opted-in
deployments whose stack configs are written as the Automation API writes them,
images pushed to a real loopback registry, and client options that let the
registry client reach that registry (the SSRF guard refuses loopback otherwise,
as it would a tenant's)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec
import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from persistence.accounts import add_user
from persistence.db import make_engine, migrate, session_factory
from persistence.models import Deployment, Operation
from programs.spec import AutoUpdate
from scheduler import store
from scheduler.poll import Poller
from scheduler.registry import ClientOptions, RegistryClient
from stacks.settings import Settings
from toolchain.registry.local import LocalRegistry, crane_push


@dataclass
class World:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    user_id: int
    scratch: Path

    @classmethod
    def on_sqlite(cls, tmp_path: Path) -> World:
        url = f"sqlite:///{tmp_path / 'shipstack.db'}"
        migrate(url)
        engine = make_engine(url)
        sessions = session_factory(engine, immediate=True)
        with sessions() as s, s.begin():
            user_id = add_user(s, "owner", password_hash=None).id
        settings = Settings.from_env({"SHIPSTACK_DATA": str(tmp_path / "data"), "SHIPSTACK_DATABASE_URL": url})
        return cls(settings=settings, engine=engine, sessions=sessions, user_id=user_id, scratch=tmp_path / "layers")

    def deploy(self, name: str, image: str, auto: AutoUpdate, strategy: str = "rolling") -> None:
        config = {
            "shipstack:template": "image",
            "shipstack:image": image,
            "shipstack:strategy": strategy,
            "shipstack:autoUpdate": msgspec.json.encode(auto, order="sorted").decode(),
        }
        with self.sessions() as s, s.begin():
            s.add(
                Deployment(
                    name=name, owner_user_id=self.user_id, template="image", image=image, status="Ready",
                    stack_config=yaml.safe_dump({"config": config}),
                )
            )  # fmt: skip

    def poller(self, client: RegistryClient, **kw: object) -> Poller:
        return Poller(self.settings, self.sessions, client, **kw)  # type: ignore[arg-type]

    def operations(self, name: str) -> list[Operation]:
        with self.sessions() as s:
            return list(s.scalars(select(Operation).where(Operation.deployment_name == name)))

    def status(self, name: str) -> store.DeploymentStatus:
        with self.sessions() as s:
            found = store.load_status(s, name)
        assert found is not None
        return found


def push(registry: LocalRegistry, repo: str, tag: str, scratch: Path, **kw: object) -> str:
    """A tiny image of its own content, pushed as repo:tag; its digest."""
    return crane_push(registry.host, repo, tag, f"{repo}:{tag}:{time.time_ns()}", scratch, **kw)  # type: ignore[arg-type]


def local(reg: LocalRegistry, env: Mapping[str, str] | None = None, **changes: object) -> ClientOptions:
    """Client options that allow this loopback registry (and its token service), with
    other settings from `env` (as the environment gives them) and field `changes`."""
    options = ClientOptions.from_env({**reg.client_env(), **(env or {})})
    return dataclasses.replace(options, **changes)  # type: ignore[arg-type]
