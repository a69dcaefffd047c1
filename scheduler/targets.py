"""Which deployments to poll, and what each one runs now.

The spec lives in the stack config (DESIGN.md), so that is what is read, not the
`deployments` table. The poll needs only plain keys (image, template, strategy,
autoUpdate), and reads them straight from `Pulumi.<name>.yaml` without touching
secrets: `stacks.stackconfig.read` decrypts the env, and its key derivation
(PBKDF2, 1,000,000 rounds, ~0.3 s) runs once per stack salt, i.e. once per
deployment: 1,000 deployments would spend minutes in it on the first poll for
values the poll never uses. Parsed files are cached by (mtime, size), so a poll
of unchanged stacks costs one `stat` each.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

import msgspec
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from persistence import operations as ops
from persistence.enums import DeploymentStatus
from persistence.models import Deployment, Operation
from programs.images import ImageRef, parse_image_ref
from programs.spec import KEY_AUTO_UPDATE, KEY_IMAGE, KEY_STRATEGY, KEY_TEMPLATE, AutoUpdate
from programs.templates import load_catalog
from scheduler.registry import Repository, repository_of
from stacks import stackconfig
from stacks.settings import Settings

PLAIN_KEYS = (KEY_IMAGE, KEY_STRATEGY, KEY_AUTO_UPDATE, KEY_TEMPLATE)
# libyaml's safe loader when PyYAML has it: ~10x faster on a thousand stack files.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigCache:
    """Plain (non-secret) config values per stack file, re-read only when it changes."""

    def __init__(self, keys: tuple[str, ...] = PLAIN_KEYS) -> None:
        self.keys = keys
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[int, int, dict[str, str]]] = {}

    def read(self, settings: Settings, name: str) -> dict[str, str] | None:
        path = Path(settings.engine.stacks_dir) / f"Pulumi.{name}.yaml"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        with self._lock:
            entry = self._entries.get(str(path))
        if entry is not None and entry[0] == st.st_mtime_ns and entry[1] == st.st_size:
            return entry[2]
        values = stackconfig.read_plain(path, self.keys, _LOADER)
        with self._lock:
            self._entries[str(path)] = (st.st_mtime_ns, st.st_size, values)
        return values


def read_plain_config(path: Path) -> dict[str, str]:
    """The plain `shipstack:*` keys the poll needs; secrets are skipped."""
    return stackconfig.read_plain(path, PLAIN_KEYS, _LOADER)


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """An opted-in deployment as the poll sees it."""

    name: str
    image: str  # what runs now: the spec's image, or the template's
    spec_image: str | None  # the spec's own image field (None: the template's image runs)
    ref: ImageRef
    repository: Repository
    auto: AutoUpdate
    strategy: str

    @property
    def tag(self) -> str:
        return self.ref.tag or "latest"

    @property
    def running_digest(self) -> str | None:
        return self.ref.digest


class Skipped(msgspec.Struct, frozen=True):
    """An opted-in deployment the poll leaves alone this time, and why."""

    name: str
    reason: str
    image: str | None = None


def auto_update_of(config: Mapping[str, str]) -> AutoUpdate:
    raw = config.get(KEY_AUTO_UPDATE)
    if not raw:
        return AutoUpdate()
    return msgspec.json.decode(raw, type=AutoUpdate)


def image_of(config: Mapping[str, str]) -> str | None:
    """The primary service's image: the spec's, or the template's default."""
    image = config.get(KEY_IMAGE)
    if image:
        return image
    template = load_catalog().get(config.get(KEY_TEMPLATE) or "")
    return template.primary.image if template is not None else None


def load_targets(session: Session, settings: Settings, cache: ConfigCache) -> tuple[list[Target], list[Skipped]]:
    """Every deployment whose stack config has auto-update enabled, split into those
    to poll and those to skip now (not Ready, or an operation queued or running:
    an update on top of a pending change could undo it)."""
    rows = session.execute(
        select(Deployment.name, Deployment.status).where(Deployment.status != DeploymentStatus.DELETING)
    ).all()
    busy = set(session.scalars(select(Operation.deployment_name).where(Operation.status.in_(ops.ACTIVE))))
    targets: list[Target] = []
    skipped: list[Skipped] = []
    for name, status in rows:
        try:
            config = cache.read(settings, name)
            if not config:
                continue
            auto = auto_update_of(config)
        except (OSError, yaml.YAMLError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            skipped.append(Skipped(name=name, reason=f"the stack config could not be read: {type(exc).__name__}"))
            continue
        if not auto.enabled:
            continue
        image = image_of(config)
        if name in busy:
            skipped.append(Skipped(name=name, image=image, reason="an operation is queued or running; next poll"))
            continue
        if status != DeploymentStatus.READY:
            skipped.append(Skipped(name=name, image=image, reason=f"the deployment is {status}, not Ready"))
            continue
        if not image:
            skipped.append(Skipped(name=name, reason="the deployment has no image"))
            continue
        try:
            ref = parse_image_ref(image)
            repo = repository_of(ref)
        except ValueError as exc:
            skipped.append(Skipped(name=name, image=image, reason=str(exc)))
            continue
        strategy = config.get(KEY_STRATEGY) or "rolling"
        targets.append(
            Target(
                name=name, image=image, spec_image=config.get(KEY_IMAGE) or None, ref=ref, repository=repo,
                auto=auto, strategy=strategy,
            )
        )  # fmt: skip
    return targets, skipped
