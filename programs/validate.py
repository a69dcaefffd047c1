"""The input rules of a spec: pure functions returning messages fit for a 400 body.

Each returns None (or []) when the input is fine. Messages may quote names and image
references, never env values. `programs.templates.validate_for_template` adds the rules
that need the template catalog.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

import msgspec

from programs.images import validate_image
from programs.names import DNS1123_LABEL, validate_name
from programs.quoting import show
from programs.spec import (
    DRIFT_POLICIES,
    PROGRAM_VERSION,
    STRATEGIES,
    UPDATE_POLICIES,
    VISIBILITIES,
    AutoUpdate,
    DeploymentSpec,
    DriftSettings,
)
from programs.tag_filter import FilterError, compile_filter
from programs.tenancy import validate_tenancy

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
# A drift check costs a pulumi process and a read of every object; a minute apart is
# the most one deployment may ask for (0: never on a schedule).
MIN_DRIFT_INTERVAL_S = 60
MAX_DRIFT_INTERVAL_S = 30 * 24 * 3600
MAX_FILTER_LENGTH = 256
MAX_RESTART_STAMP_LENGTH = 64

ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def validate_env_key(key: object) -> str | None:
    """Env var names: C identifiers, so every shell and runtime can read them."""
    if not isinstance(key, str) or not key:
        return "env var names must be non-empty strings"
    if len(key) > MAX_ENV_KEY_LENGTH:
        return f"env var name {show(key)} is longer than {MAX_ENV_KEY_LENGTH} characters"
    if not ENV_KEY.fullmatch(key):
        return f"env var name {show(key)} must start with a letter or '_' and contain only letters, digits and '_'"
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
    if not errors and len(msgspec.json.encode(dict(env), order="sorted")) > MAX_ENV_JSON_BYTES:
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
    if not all(DNS1123_LABEL.fullmatch(label) for label in domain.split(".")):
        return f"base domain {show(domain)} must be a lowercase DNS name"
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


def validate_drift(drift: DriftSettings) -> list[str]:
    """Policy report|reconcile; the interval (when given) is 0 or a minute to 30 days."""
    errors: list[str] = []
    if drift.policy not in DRIFT_POLICIES:
        errors.append(f"drift policy must be one of {', '.join(DRIFT_POLICIES)}")
    interval = drift.interval_s
    if interval is not None and (
        isinstance(interval, bool)
        or not isinstance(interval, int)
        or (interval != 0 and not MIN_DRIFT_INTERVAL_S <= interval <= MAX_DRIFT_INTERVAL_S)
    ):
        errors.append(
            f"drift interval must be 0 (never on a schedule) or between {MIN_DRIFT_INTERVAL_S} and "
            f"{MAX_DRIFT_INTERVAL_S} seconds"
        )
    return errors


def check_program_version(spec: DeploymentSpec) -> str | None:
    """An error when `spec` was written by a newer program than this one.

    Running an older program against it could silently drop what the newer one
    renders, so the program refuses instead.
    """
    if spec.program_version > PROGRAM_VERSION:
        return f"spec was written by program version {spec.program_version}, this program is version {PROGRAM_VERSION}"
    return None


def validate_spec(spec: DeploymentSpec) -> list[str]:
    """Every rule that can be checked without the template catalog.

    `programs.templates.validate_for_template` adds the template-specific ones
    (known template, required env, raw image present, fits its namespace).
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
    errors.extend(validate_drift(spec.drift))
    errors.extend(validate_tenancy(spec.tenancy))
    return errors
