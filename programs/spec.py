"""The deployment spec: what a user asked for, and how it is stored as Pulumi config.

A deployment is one Pulumi stack and its *whole* spec lives in that stack's config
(DESIGN.md, "The core idea"). That makes Pulumi's update history the revision history,
and rollback is "write revision N's config back and `up`". So this module owns three
things that must agree exactly:

- `DeploymentSpec`, the typed spec every layer passes around;
- `spec_to_config` / `config_to_spec`, an exact, lossless round trip between the spec
  and flat `shipstack:*` config strings (env values as one Pulumi secret);
- the input rules (names, image references, env vars, ports...) as pure functions that
  return error strings, so the API can answer 400 before anything reaches Pulumi or
  Kubernetes.

Nothing here imports pulumi: the API and the scheduler import this module cheaply.
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import string
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Literal, get_args

import msgspec

# Bump when the program renders different Kubernetes objects for the same spec. It is
# stored in config, so `pulumi stack history` shows which program produced a revision,
# and an old program refuses a spec written by a newer one (see `check_program_version`).
PROGRAM_VERSION = 1

Visibility = Literal["public", "internal"]
Strategy = Literal["rolling", "recreate"]
UpdatePolicy = Literal["digest", "patch", "minor", "major"]

VISIBILITIES: tuple[str, ...] = get_args(Visibility)
STRATEGIES: tuple[str, ...] = get_args(Strategy)
UPDATE_POLICIES: tuple[str, ...] = get_args(UpdatePolicy)

# Deployment names go into the namespace `sd-<name>` and into ingress host labels
# `<service>-<name>`; 40 leaves room for a 22-character service name in a 63-char label.
MAX_NAME_LENGTH = 40
GENERATED_NAME_LENGTH = 10
NAMESPACE_PREFIX = "sd-"

MAX_ENV_VARS = 100
MAX_ENV_VALUE_BYTES = 32 * 1024
MAX_ENV_KEY_LENGTH = 253  # Kubernetes Secret data keys are at most 253 characters.
# The Automation API passes config values on the `pulumi config set-all` command line, and
# Linux caps one argument at 128 KiB (MAX_ARG_STRLEN). The env travels as ONE secret value,
# so its JSON must stay under that, whatever the per-value limit allows.
MAX_ENV_JSON_BYTES = 100 * 1024

MIN_REPLICAS = 1  # 0 would leave the Service without endpoints and its await would hang.
MAX_REPLICAS = 20
MIN_AUTO_UPDATE_INTERVAL_S = 60
MAX_AUTO_UPDATE_INTERVAL_S = 7 * 24 * 3600
MAX_FILTER_LENGTH = 256
MAX_RESTART_STAMP_LENGTH = 64

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
    auto_json = _optional(config, KEY_AUTO_UPDATE)
    if auto_json is not None:
        try:
            raw["auto_update"] = msgspec.json.decode(auto_json, type=AutoUpdate)
        except msgspec.DecodeError as exc:
            raise SpecConfigError(f"config key {KEY_AUTO_UPDATE}: {exc}") from None

    try:
        return msgspec.convert(raw, DeploymentSpec)
    except msgspec.ValidationError as exc:
        raise SpecConfigError(f"config does not describe a deployment: {exc}") from None


def check_program_version(spec: DeploymentSpec) -> str | None:
    """An error when `spec` was written by a newer program than this one.

    Running an older program against it could silently drop what the newer one
    renders, so the program refuses instead.
    """
    if spec.program_version > PROGRAM_VERSION:
        return f"spec was written by program version {spec.program_version}, this program is version {PROGRAM_VERSION}"
    return None


# --- revision messages ---------------------------------------------------------------

_MAX_LISTED_KEYS = 10


def _key_list(keys: Iterable[str]) -> str:
    ordered = sorted(keys)
    shown = ", ".join(ordered[:_MAX_LISTED_KEYS])
    hidden = len(ordered) - _MAX_LISTED_KEYS
    return f"{shown} (+{hidden} more)" if hidden > 0 else shown


def describe_env_change(old: Mapping[str, str], new: Mapping[str, str]) -> str | None:
    """'env keys added A; changed B; removed C', naming keys and never values."""
    added = new.keys() - old.keys()
    removed = old.keys() - new.keys()
    changed = {k for k in old.keys() & new.keys() if old[k] != new[k]}
    parts = []
    if added:
        parts.append(f"added {_key_list(added)}")
    if changed:
        parts.append(f"changed {_key_list(changed)}")
    if removed:
        parts.append(f"removed {_key_list(removed)}")
    if not parts:
        return None
    return "env keys " + "; ".join(parts)


def _or_default(value: object) -> str:
    return "default" if value is None else str(value)


def describe_change(old: DeploymentSpec | None, new: DeploymentSpec) -> str:
    """A one-line revision message for going from `old` to `new` (None: a create).

    It becomes the Pulumi update message, i.e. what `pulumi stack history` and the
    history API show, so it names what changed and NEVER an env value.
    """
    if old is None:
        if new.template == "image" and new.image:
            return f"create image {new.image}"
        return f"create {new.template}"

    parts: list[str] = []
    if new.restart_stamp != old.restart_stamp:
        parts.append("restart" if new.restart_stamp else "restart stamp cleared")
    if new.template != old.template:
        parts.append(f"template {old.template} -> {new.template}")
    if new.image != old.image:
        parts.append(f"image {_or_default(old.image)} -> {_or_default(new.image)}")
    if new.container_port != old.container_port:
        parts.append(f"port {_or_default(old.container_port)} -> {_or_default(new.container_port)}")
    env_change = describe_env_change(old.env, new.env)
    if env_change:
        parts.append(f"config: {env_change}")
    if new.visibility != old.visibility:
        parts.append(f"visibility {old.visibility} -> {new.visibility}")
    if new.replicas != old.replicas:
        parts.append(f"replicas {old.replicas} -> {new.replicas}")
    if new.strategy != old.strategy:
        parts.append(f"strategy {old.strategy} -> {new.strategy}")
    if new.auto_update != old.auto_update:
        parts.append(_describe_auto_update(old.auto_update, new.auto_update, new.strategy))
    if new.base_domain != old.base_domain:
        parts.append(f"base domain {old.base_domain} -> {new.base_domain}")
    if new.ingress_controller != old.ingress_controller:
        parts.append(f"ingress controller {'on' if new.ingress_controller else 'off'}")
    if new.program_version != old.program_version:
        parts.append(f"program version {old.program_version} -> {new.program_version}")
    if new.name != old.name:
        parts.append(f"name {old.name} -> {new.name}")
    return "; ".join(parts) if parts else "no changes"


def _describe_auto_update(old: AutoUpdate, new: AutoUpdate, strategy: str) -> str:
    if new.enabled and not old.enabled:
        return f"auto-update enabled ({strategy}, {new.policy})"
    if old.enabled and not new.enabled:
        return "auto-update disabled"
    changes = []
    if new.policy != old.policy:
        changes.append(f"policy {old.policy} -> {new.policy}")
    if new.include != old.include:
        changes.append("include filter changed")
    if new.exclude != old.exclude:
        changes.append("exclude filter changed")
    if new.interval_s != old.interval_s:
        changes.append(f"interval {_or_default(old.interval_s)} -> {_or_default(new.interval_s)}")
    if new.prerelease != old.prerelease:
        changes.append(f"prereleases {'included' if new.prerelease else 'excluded'}")
    return "auto-update " + ", ".join(changes)


# --- validation ----------------------------------------------------------------------
# Each returns None (or []) when the input is fine, else messages fit for a 400 body.
# Messages may quote names and image references, never env values.

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_ALPHABET = string.ascii_lowercase + string.digits


def _show(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def validate_name(name: object) -> str | None:
    """Deployment names: DNS-1123 labels of at most 40 characters."""
    if not isinstance(name, str) or not name:
        return "name must be a non-empty string"
    if len(name) > MAX_NAME_LENGTH:
        return f"name must be at most {MAX_NAME_LENGTH} characters"
    if not _DNS1123_LABEL.fullmatch(name):
        return (
            f"name {_show(name)} must consist of lowercase letters, digits and '-', "
            "and start and end with a letter or digit"
        )
    return None


def generate_name(rng: random.Random | None = None) -> str:
    """A fresh deployment name: 10 characters of [a-z0-9], starting with a letter.

    The letter first keeps it a valid DNS-1035 label too (usable as a Service name).
    Pass a seeded `random.Random` in tests; the default is the OS CSPRNG.
    """
    rng = rng or secrets.SystemRandom()
    first = rng.choice(string.ascii_lowercase)
    rest = "".join(rng.choice(_NAME_ALPHABET) for _ in range(GENERATED_NAME_LENGTH - 1))
    return first + rest


class ImageRef(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed OCI image reference. `domain` is None for Docker Hub short names."""

    domain: str | None
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """`domain/path`, or just `path` when no registry was named."""
        return f"{self.domain}/{self.path}" if self.domain else self.path


# The grammar of github.com/distribution/reference. re.ASCII matters: without it \w
# would accept any Unicode letter in tags.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*", re.ASCII)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?P<host>{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
    r"(?::(?P<port>[0-9]+))?",
    re.ASCII,
)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}", re.ASCII)
MAX_IMAGE_NAME_LENGTH = 255


def parse_image_ref(ref: str) -> ImageRef:
    """Parse `[registry[:port]/]path[:tag][@sha256:digest]`; raises ValueError.

    The first path component is a registry when it has a '.' or ':' or is 'localhost'
    (the rule docker and containerd use), so `nginx` and `library/nginx` are Docker Hub.
    """
    if not isinstance(ref, str) or not ref:
        raise ValueError("image must be a non-empty string")
    if ref != ref.strip() or any(c.isspace() for c in ref):
        raise ValueError(f"image {_show(ref)} must not contain whitespace")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"image {_show(ref)} has an invalid digest (want sha256:<64 hex digits>)")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ValueError(
                f"image {_show(ref)} has an invalid tag (letters, digits, '_', '.', '-', "
                "at most 128, not starting with '.' or '-')"
            )
    if not rest:
        raise ValueError(f"image {_show(ref)} has no repository name")
    if len(rest) > MAX_IMAGE_NAME_LENGTH:
        raise ValueError(f"image name must be at most {MAX_IMAGE_NAME_LENGTH} characters")
    domain = None
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        match = _DOMAIN.fullmatch(first)
        if not match:
            raise ValueError(f"image {_show(ref)} has an invalid registry {_show(first)}")
        port = match.group("port")
        if port is not None and not 0 < int(port) <= 65535:
            raise ValueError(f"image {_show(ref)} has an invalid registry port")
        domain, rest = first, remainder
    for component in rest.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise ValueError(
                f"image {_show(ref)}: path component {_show(component)} must be lowercase "
                "letters and digits, separated by '.', '_', '__' or '-'"
            )
    return ImageRef(domain=domain, path=rest, tag=tag, digest=digest)


def validate_image(ref: object) -> str | None:
    """OCI image references: registry[:port]/path[:tag][@digest]."""
    try:
        parse_image_ref(ref)  # type: ignore[arg-type]
    except ValueError as exc:
        return str(exc)
    return None


def validate_env_key(key: object) -> str | None:
    """Env var names: C identifiers, so every shell and runtime can read them."""
    if not isinstance(key, str) or not key:
        return "env var names must be non-empty strings"
    if len(key) > MAX_ENV_KEY_LENGTH:
        return f"env var name {_show(key)} is longer than {MAX_ENV_KEY_LENGTH} characters"
    if not _ENV_KEY.fullmatch(key):
        return f"env var name {_show(key)} must start with a letter or '_' and contain only letters, digits and '_'"
    return None


def validate_env(env: object) -> list[str]:
    """At most 100 vars; names are C identifiers; values are strings of at most 32 KiB
    without NUL bytes; all of it fits in one Pulumi config value. Messages name keys,
    never values."""
    if not isinstance(env, Mapping):
        return ["env vars must be an object of string values"]
    errors: list[str] = []
    if len(env) > MAX_ENV_VARS:
        errors.append(f"at most {MAX_ENV_VARS} env vars are allowed, got {len(env)}")
    for key, value in env.items():
        key_error = validate_env_key(key)
        if key_error:
            errors.append(key_error)
            continue
        if not isinstance(value, str):
            errors.append(f"env var {key} must be a string")
        elif len(value.encode("utf-8", "surrogatepass")) > MAX_ENV_VALUE_BYTES:
            errors.append(f"env var {key} is larger than {MAX_ENV_VALUE_BYTES // 1024} KiB")
        elif "\x00" in value:
            errors.append(f"env var {key} contains a NUL character")
    if not errors and len(_json(dict(env)).encode()) > MAX_ENV_JSON_BYTES:
        errors.append(f"env vars together must be at most {MAX_ENV_JSON_BYTES // 1024} KiB")
    return errors


def validate_port(port: object) -> str | None:
    """Container ports: an integer 1..65535."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return "container port must be an integer between 1 and 65535"
    return None


def validate_replicas(replicas: object) -> str | None:
    """Replicas: an integer 1..20."""
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not MIN_REPLICAS <= replicas <= MAX_REPLICAS:
        return f"replicas must be an integer between {MIN_REPLICAS} and {MAX_REPLICAS}"
    return None


def validate_base_domain(domain: object) -> str | None:
    """A lowercase DNS name; ingress hosts are `<label>.<base_domain>`."""
    if not isinstance(domain, str) or not domain:
        return "base domain must be a non-empty string"
    # Room for the longest host label (63) and its dot within DNS's 253.
    if len(domain) > 253 - 64:
        return "base domain is too long"
    if not all(_DNS1123_LABEL.fullmatch(label) for label in domain.split(".")):
        return f"base domain {_show(domain)} must be a lowercase DNS name"
    if any(len(label) > 63 for label in domain.split(".")):
        return "base domain labels must be at most 63 characters"
    return None


def validate_restart_stamp(stamp: object) -> str | None:
    """Restart stamps: ISO 8601 timestamps (they end up in a pod annotation)."""
    if stamp is None:
        return None
    if not isinstance(stamp, str) or not stamp or len(stamp) > MAX_RESTART_STAMP_LENGTH:
        return "restart stamp must be an ISO 8601 timestamp"
    try:
        datetime.fromisoformat(stamp)
    except ValueError:
        return "restart stamp must be an ISO 8601 timestamp"
    return None


def validate_auto_update(auto: AutoUpdate) -> list[str]:
    """Policy is one of digest|patch|minor|major, filters are regexes RE2 runs (linear
    time: a tenant's pattern is matched inside the shared process, see
    programs/tag_filter.py), and the poll interval (when given) is between a minute
    and a week."""
    from programs.tag_filter import FilterError, compile_filter

    errors: list[str] = []
    if auto.policy not in UPDATE_POLICIES:
        errors.append(f"auto-update policy must be one of {', '.join(UPDATE_POLICIES)}")
    for label, pattern in (("include", auto.include), ("exclude", auto.exclude)):
        if pattern is None:
            continue
        if not isinstance(pattern, str) or len(pattern) > MAX_FILTER_LENGTH:
            errors.append(f"auto-update {label} must be a regex of at most {MAX_FILTER_LENGTH} characters")
            continue
        try:
            compile_filter(pattern)
        except FilterError as exc:
            errors.append(f"auto-update {label} {exc}")
    if auto.interval_s is not None and (
        isinstance(auto.interval_s, bool)
        or not isinstance(auto.interval_s, int)
        or not MIN_AUTO_UPDATE_INTERVAL_S <= auto.interval_s <= MAX_AUTO_UPDATE_INTERVAL_S
    ):
        errors.append(
            f"auto-update interval must be between {MIN_AUTO_UPDATE_INTERVAL_S} and "
            f"{MAX_AUTO_UPDATE_INTERVAL_S} seconds"
        )
    return errors


def validate_spec(spec: DeploymentSpec) -> list[str]:
    """Every rule that can be checked without the template catalog.

    `programs.templates.validate_for_template` adds the template-specific ones
    (known template, required env, raw image present).
    """
    errors: list[str] = []
    for error in (
        validate_name(spec.name),
        None if spec.image is None else validate_image(spec.image),
        None if spec.container_port is None else validate_port(spec.container_port),
        validate_replicas(spec.replicas),
        validate_base_domain(spec.base_domain),
        validate_restart_stamp(spec.restart_stamp),
        check_program_version(spec),
    ):
        if error:
            errors.append(error)
    if spec.visibility not in VISIBILITIES:
        errors.append(f"visibility must be one of {', '.join(VISIBILITIES)}")
    if spec.strategy not in STRATEGIES:
        errors.append(f"strategy must be one of {', '.join(STRATEGIES)}")
    errors.extend(validate_env(spec.env))
    errors.extend(validate_auto_update(spec.auto_update))
    return errors


def env_checksum(env: Mapping[str, str]) -> str:
    """sha256 of the env as sorted JSON: put on the pod template so a changed Secret
    rolls the pods (Kubernetes does not restart pods when a Secret they read changes)."""
    return hashlib.sha256(msgspec.json.encode(dict(env), order="sorted")).hexdigest()
