"""The deployment spec: what a user asked for, and how it is stored as Pulumi config.

A deployment is one Pulumi stack and its *whole* spec lives in that stack's config
(DESIGN.md, "The core idea"). That makes Pulumi's update history the revision history,
and rollback is "write revision N's config back and `up`". So this module owns what
must agree exactly: `DeploymentSpec`, the `shipstack:*` config keys, and
`spec_to_config` / `config_to_spec`, a lossless round trip between the two (env values
as one Pulumi secret). The input rules are in `programs.validate`, revision messages
in `programs.describe`.

Nothing here imports pulumi: the API and the scheduler import this module cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Literal, get_args

import msgspec

from programs.tenancy import Tenancy

# Bump when the program renders different Kubernetes objects for the same spec. It is
# stored in config, so `pulumi stack history` shows which program produced a revision,
# and an old program refuses a spec written by a newer one (see `check_program_version`).
# 2: NetworkPolicy, ResourceQuota, LimitRange, container resources and security context.
PROGRAM_VERSION = 2

Visibility = Literal["public", "internal"]
Strategy = Literal["rolling", "recreate"]
UpdatePolicy = Literal["digest", "patch", "minor", "major"]
DriftPolicy = Literal["report", "reconcile"]

VISIBILITIES: tuple[str, ...] = get_args(Visibility)
STRATEGIES: tuple[str, ...] = get_args(Strategy)
UPDATE_POLICIES: tuple[str, ...] = get_args(UpdatePolicy)
DRIFT_POLICIES: tuple[str, ...] = get_args(DriftPolicy)

NAMESPACE_PREFIX = "sd-"

# --- Pulumi config keys --------------------------------------------------------------

CONFIG_NAMESPACE = "shipstack"
KEY_NAME = "shipstack:name"
KEY_TEMPLATE = "shipstack:template"
KEY_IMAGE = "shipstack:image"
KEY_CONTAINER_PORT = "shipstack:containerPort"
KEY_ENV = "shipstack:env"
KEY_ENV_KEYS = "shipstack:envKeys"
KEY_VISIBILITY = "shipstack:visibility"
KEY_REPLICAS = "shipstack:replicas"
KEY_STRATEGY = "shipstack:strategy"
KEY_AUTO_UPDATE = "shipstack:autoUpdate"
KEY_RESTART_STAMP = "shipstack:restartStamp"
KEY_BASE_DOMAIN = "shipstack:baseDomain"
KEY_INGRESS_CONTROLLER = "shipstack:ingressController"
KEY_TENANCY = "shipstack:tenancy"
KEY_DRIFT = "shipstack:drift"
KEY_PROGRAM_VERSION = "shipstack:programVersion"

# Keys the program reads that are NOT part of the spec: they describe where the stack
# deploys, not what the user asked for, so they never show up in `describe_change`.
KEY_KUBECONFIG = "shipstack:kubeconfig"  # secret: kubeconfig contents
KEY_CLUSTER_IDENTIFIER = "shipstack:clusterIdentifier"  # optional, plain
KEY_AWAIT_TIMEOUT = "shipstack:awaitTimeoutSeconds"  # optional, plain: how long a rollout may take

SPEC_CONFIG_KEYS: tuple[str, ...] = (
    KEY_NAME,
    KEY_TEMPLATE,
    KEY_IMAGE,
    KEY_CONTAINER_PORT,
    KEY_ENV,
    KEY_ENV_KEYS,
    KEY_VISIBILITY,
    KEY_REPLICAS,
    KEY_STRATEGY,
    KEY_AUTO_UPDATE,
    KEY_RESTART_STAMP,
    KEY_BASE_DOMAIN,
    KEY_INGRESS_CONTROLLER,
    KEY_TENANCY,
    KEY_DRIFT,
    KEY_PROGRAM_VERSION,
)
SECRET_CONFIG_KEYS: frozenset[str] = frozenset({KEY_ENV, KEY_KUBECONFIG})


class AutoUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """Whether and how the scheduler moves the deployment to newer image tags.

    `policy` "digest" follows the digest of the current (mutable) tag; patch/minor/major
    follow semver within that range. `include`/`exclude` are regexes on tag names.
    """

    enabled: bool = False
    policy: UpdatePolicy = "digest"
    include: str | None = None
    exclude: str | None = None
    interval_s: int | None = None
    prerelease: bool = False


class DriftSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the service watches the cluster for edits made behind its back.

    `policy` "report" records what drifted; "reconcile" also applies the spec again
    after a check finds drift. `interval_s` None follows the service's
    SHIPSTACK_DRIFT_INTERVAL, 0 never checks this deployment on a schedule. Nothing
    here changes what the program renders: it lives in the spec so that its
    changes are revisions like every other setting.
    """

    policy: DriftPolicy = "report"
    interval_s: int | None = None


class DeploymentSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that decides what a deployment looks like in the cluster.

    Every field round-trips through Pulumi config, so a revision's config is enough to
    reproduce it. `env` holds secret values: never log a spec with `repr`.
    """

    name: str
    template: str
    base_domain: str
    image: str | None = None
    container_port: int | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    visibility: Visibility = "public"
    replicas: int = 1
    strategy: Strategy = "rolling"
    auto_update: AutoUpdate = msgspec.field(default_factory=AutoUpdate)
    restart_stamp: str | None = None
    ingress_controller: bool = True
    # Set by the operator, not the user: what confines the namespace (network policy,
    # quota, container sizes). Placement, like base_domain: see `with_placement`.
    tenancy: Tenancy = msgspec.field(default_factory=Tenancy)
    drift: DriftSettings = msgspec.field(default_factory=DriftSettings)
    program_version: int = PROGRAM_VERSION

    def __repr__(self) -> str:
        # The default repr would print env values into logs and tracebacks.
        return (
            f"DeploymentSpec(name={self.name!r}, template={self.template!r}, "
            f"image={self.image!r}, env_keys={sorted(self.env)!r}, "
            f"visibility={self.visibility!r}, replicas={self.replicas!r}, "
            f"strategy={self.strategy!r})"
        )

    def __rich_repr__(self) -> Iterator[tuple[str, object]]:
        # msgspec's default feeds rich/pretty printers every field, env values included.
        for field in self.__struct_fields__:
            if field == "env":
                yield "env_keys", sorted(self.env)
            else:
                yield field, getattr(self, field)


def drift_settings_of(raw: str | None) -> DriftSettings:
    """`shipstack:drift` as stored; missing (a stack older than drift detection) or
    unreadable means the defaults: a check is never refused over its own settings."""
    if not raw:
        return DriftSettings()
    try:
        return msgspec.json.decode(raw, type=DriftSettings)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return DriftSettings()


def namespace_for(name: str) -> str:
    """The Kubernetes namespace of a deployment (one namespace per deployment)."""
    return f"{NAMESPACE_PREFIX}{name}"


# --- spec <-> config -----------------------------------------------------------------


class SpecConfigError(ValueError):
    """Stack config that does not describe a valid spec (hand-edited, or corrupt)."""


def _json(value: object) -> str:
    return msgspec.json.encode(value, order="sorted").decode()


def spec_to_config(spec: DeploymentSpec) -> dict[str, tuple[str, bool]]:
    """The stack config for `spec`: `{key: (value, is_secret)}`.

    Every key is always present (None becomes "") so that writing the whole map with
    `config set-all` replaces the previous revision completely and never leaves a stale
    key behind. Values are deterministic: equal specs give byte-equal config, so the
    stacks layer can compare config to skip no-op updates. Env values are ONE secret
    JSON object; `envKeys` lists just the names in plain text so history can tell which
    keys changed without decrypting anything.

    Raises ValueError for an empty-string image or restart stamp: "" is how None is
    stored, so it could not come back as itself (validate_spec rejects both anyway).
    """
    if spec.image == "" or spec.restart_stamp == "":
        raise ValueError("image and restart_stamp must be None or non-empty")
    return {
        KEY_NAME: (spec.name, False),
        KEY_TEMPLATE: (spec.template, False),
        KEY_IMAGE: (spec.image or "", False),
        KEY_CONTAINER_PORT: (
            "" if spec.container_port is None else str(spec.container_port),
            False,
        ),
        KEY_ENV: (_json(spec.env), True),
        KEY_ENV_KEYS: (_json(sorted(spec.env)), False),
        KEY_VISIBILITY: (spec.visibility, False),
        KEY_REPLICAS: (str(spec.replicas), False),
        KEY_STRATEGY: (spec.strategy, False),
        KEY_AUTO_UPDATE: (_json(spec.auto_update), False),
        KEY_RESTART_STAMP: (spec.restart_stamp or "", False),
        KEY_BASE_DOMAIN: (spec.base_domain, False),
        KEY_INGRESS_CONTROLLER: ("true" if spec.ingress_controller else "false", False),
        KEY_TENANCY: (_json(spec.tenancy), False),
        KEY_DRIFT: (_json(spec.drift), False),
        KEY_PROGRAM_VERSION: (str(spec.program_version), False),
    }


def _required(config: Mapping[str, str], key: str) -> str:
    value = config.get(key)
    if value is None or value == "":
        raise SpecConfigError(f"config key {key} is missing")
    return value


def _optional(config: Mapping[str, str], key: str) -> str | None:
    value = config.get(key)
    return None if value is None or value == "" else value


def _int(config: Mapping[str, str], key: str) -> int | None:
    value = _optional(config, key)
    if value is None:
        return None
    if not re.fullmatch(r"-?[0-9]+", value):
        raise SpecConfigError(f"config key {key} is not an integer")
    return int(value)


def _bool(config: Mapping[str, str], key: str) -> bool | None:
    value = _optional(config, key)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise SpecConfigError(f"config key {key} must be true or false")
    return value == "true"


def config_to_spec(config: Mapping[str, str]) -> DeploymentSpec:
    """The spec stored in `config` (`{"shipstack:template": "nginx", ...}`, secrets in
    plain text); the exact inverse of `spec_to_config`.

    Keys a newer program added may be missing from an old revision's config: they take
    the field's default. `envKeys` is informational and ignored here (the env itself is
    the truth). Raises `SpecConfigError` naming the key, never a value.
    """
    raw: dict[str, object] = {
        "name": _required(config, KEY_NAME),
        "template": _required(config, KEY_TEMPLATE),
        "base_domain": _required(config, KEY_BASE_DOMAIN),
        "image": _optional(config, KEY_IMAGE),
        "container_port": _int(config, KEY_CONTAINER_PORT),
        "restart_stamp": _optional(config, KEY_RESTART_STAMP),
    }
    for field, key in (("visibility", KEY_VISIBILITY), ("strategy", KEY_STRATEGY)):
        value = _optional(config, key)
        if value is not None:
            raw[field] = value
    for field, key in (("replicas", KEY_REPLICAS), ("program_version", KEY_PROGRAM_VERSION)):
        number = _int(config, key)
        if number is not None:
            raw[field] = number
    flag = _bool(config, KEY_INGRESS_CONTROLLER)
    if flag is not None:
        raw["ingress_controller"] = flag

    env_json = _optional(config, KEY_ENV)
    if env_json is not None:
        try:
            raw["env"] = msgspec.json.decode(env_json, type=dict[str, str])
        except msgspec.DecodeError:
            # Deliberately without the decoder's message: it may quote a secret value.
            raise SpecConfigError(f"config key {KEY_ENV} is not a JSON object of strings") from None
    for field, key, kind in (
        ("auto_update", KEY_AUTO_UPDATE, AutoUpdate),
        ("tenancy", KEY_TENANCY, Tenancy),
        ("drift", KEY_DRIFT, DriftSettings),
    ):
        text = _optional(config, key)
        if text is not None:
            try:
                raw[field] = msgspec.json.decode(text, type=kind)
            except msgspec.DecodeError as exc:
                raise SpecConfigError(f"config key {key}: {exc}") from None

    try:
        return msgspec.convert(raw, DeploymentSpec)
    except msgspec.ValidationError as exc:
        raise SpecConfigError(f"config does not describe a deployment: {exc}") from None
