"""Which deployments to poll, and what each one runs now.

The spec lives in the stack config, so that is what is read: the config of record,
kept on the deployment row. The poll needs only plain keys (image, template,
strategy, autoUpdate) and never touches secrets: decrypting the env would cost a key
derivation (PBKDF2, 1,000,000 rounds, ~0.3 s) per deployment for values the poll
never uses. Parsed configs are cached by their text, so a poll of unchanged stacks
costs one dictionary lookup each.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import msgspec
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

PLAIN_KEYS = (KEY_IMAGE, KEY_STRATEGY, KEY_AUTO_UPDATE, KEY_TEMPLATE)


class ConfigCache:
    """Plain (non-secret) config values per stack, parsed again only when its text changes."""

    def __init__(self, keys: tuple[str, ...] = PLAIN_KEYS) -> None:
        self.keys = keys
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, dict[str, str]]] = {}

    def read(self, name: str, text: str | None) -> dict[str, str] | None:
        if not text:
            return None
        with self._lock:
            entry = self._entries.get(name)
        if entry is not None and entry[0] == text:
            return entry[1]
        values = stackconfig.read_plain(text, self.keys)
        with self._lock:
            self._entries[name] = (text, values)
        return values


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


def load_targets(session: Session, cache: ConfigCache) -> tuple[list[Target], list[Skipped]]:
    """Every deployment whose stack config has auto-update enabled, split into those
    to poll and those to skip now (not Ready, or an operation queued or running:
    an update on top of a pending change could undo it)."""
    rows = session.execute(
        select(Deployment.name, Deployment.status, Deployment.stack_config).where(
            Deployment.status != DeploymentStatus.DELETING
        )
    ).all()
    busy = set(session.scalars(select(Operation.deployment_name).where(Operation.status.in_(ops.ACTIVE))))
    targets: list[Target] = []
    skipped: list[Skipped] = []
    for name, status, text in rows:
        try:
            config = cache.read(name, text)
            if not config:
                continue
            auto = auto_update_of(config)
        except (stackconfig.StackConfigError, msgspec.DecodeError, msgspec.ValidationError) as exc:
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
