"""Templates are data: `programs/templates/*.yaml`, one file per template.

Adding a template must not mean adding a code branch, so a template only *describes*
its services (image, port, env defaults, required and generated env, a volume, whether
it is public) and `resolve_services` turns a template plus a `DeploymentSpec` into
the concrete per-service settings the Pulumi program renders. Everything here is pure
and pulumi-free, so the API can validate requests and list the catalog cheaply.

How a deployment's single env map reaches its services (later wins):
1. the service's `env` defaults, where `${KEY}` is replaced by the deployment env's
   KEY (`${KEY|url}`: URL-escaped; `${KEY|hex}`: every UTF-8 byte as `\\xHH`, for a
   double-quoted string in a C-style config file such as redis.conf);
2. the keys the service declares in `required_env` / `generated_secrets`;
3. with `user_env: true` (the default) every deployment env var.
The image and port overrides in the spec apply to the first service, the "primary"
one (the one auto-update follows).
"""

from __future__ import annotations

import functools
import random
import re
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import msgspec
import yaml

from programs.budget import budget_errors
from programs.images import validate_image
from programs.spec import DeploymentSpec
from programs.tenancy import Resources, validate_resources
from programs.validate import validate_env_key, validate_port

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
RAW_IMAGE_TEMPLATE = "image"
# Service names are Kubernetes Service names (DNS-1035 labels) and prefix ingress host
# labels `<service>-<deployment>`: 22 + 1 + 40 stays within DNS's 63.
MAX_SERVICE_NAME_LENGTH = 22
GENERATED_SECRET_LENGTH = 32
# Letters and digits only: safe in URLs, shells and connection strings unescaped.
_SECRET_ALPHABET = string.ascii_letters + string.digits
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_TEMPLATE_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")
_QUANTITY = re.compile(r"[1-9][0-9]*(Mi|Gi|Ti)")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:\|(url|hex))?\}")


class Volume(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A ReadWriteOnce PersistentVolumeClaim mounted into the service's container."""

    size: str
    mount_path: str


class Service(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One container + Service (+ Ingress when `public`) inside a deployment."""

    name: str
    image: str
    port: int
    # Requests and limits of its container; the operator may replace them
    # (`Tenancy.resources`). Required: every container shipstack runs is sized.
    resources: Resources
    # Replaces the image's entrypoint when set (never user input: templates only).
    command: tuple[str, ...] = ()
    public: bool = False
    env: dict[str, str] = msgspec.field(default_factory=dict)
    required_env: tuple[str, ...] = ()
    generated_secrets: tuple[str, ...] = ()
    volume: Volume | None = None
    user_env: bool = True


class Template(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A deployable catalog entry. `raw_image` marks the synthetic `image` template
    whose image and port come from the spec (deploy-image)."""

    name: str
    description: str
    services: tuple[Service, ...]
    raw_image: bool = False

    @property
    def primary(self) -> Service:
        """The service the spec's image/port overrides and auto-update apply to."""
        return self.services[0]


class TemplateError(ValueError):
    """A template file that is not valid. Raised at load time, never mid-deploy."""


def validate_template(template: Template) -> list[str]:
    """Rules a template file must satisfy so that every spec built on it renders."""
    errors: list[str] = []
    if not _TEMPLATE_NAME.fullmatch(template.name):
        errors.append(f"template name {template.name!r} must be a short lowercase name")
    if not template.services:
        errors.append("a template needs at least one service")
    if template.raw_image and len(template.services) != 1:
        errors.append("a raw-image template has exactly one service")
    seen: set[str] = set()
    provided: set[str] = set()
    for service in template.services:
        provided.update(service.required_env, service.generated_secrets)
    for service in template.services:
        where = f"service {service.name!r}"
        if service.name in seen:
            errors.append(f"{where} is defined twice")
        seen.add(service.name)
        if len(service.name) > MAX_SERVICE_NAME_LENGTH or not _DNS1035_LABEL.fullmatch(service.name):
            errors.append(
                f"{where}: names are lowercase DNS labels of at most "
                f"{MAX_SERVICE_NAME_LENGTH} characters starting with a letter"
            )
        if service.image or not template.raw_image:
            image_error = validate_image(service.image)
            if image_error:
                errors.append(f"{where}: {image_error}")
        port_error = validate_port(service.port)
        if port_error:
            errors.append(f"{where}: {port_error}")
        errors.extend(validate_resources(where, service.resources))
        for key in (*service.env, *service.required_env, *service.generated_secrets):
            key_error = validate_env_key(key)
            if key_error:
                errors.append(f"{where}: {key_error}")
        for value in service.env.values():
            for match in _REFERENCE.finditer(value):
                # Only keys that are guaranteed present after create may be referenced.
                if match.group(1) not in provided:
                    errors.append(f"{where}: ${{{match.group(1)}}} is neither required nor generated")
        if service.volume is not None:
            if not _QUANTITY.fullmatch(service.volume.size):
                errors.append(f"{where}: volume size must look like 512Mi, 1Gi or 1Ti")
            if not service.volume.mount_path.startswith("/"):
                errors.append(f"{where}: volume mount path must be absolute")
    return errors


def _load_file(path: Path) -> Template:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        template = msgspec.convert(data, Template)
    except (yaml.YAMLError, msgspec.ValidationError) as exc:
        raise TemplateError(f"{path.name}: {exc}") from exc
    if template.name != path.stem:
        raise TemplateError(f"{path.name}: template name {template.name!r} != file name")
    errors = validate_template(template)
    if errors:
        raise TemplateError(f"{path.name}: " + "; ".join(errors))
    return template


@functools.cache
def _load_dir(directory: str) -> tuple[tuple[str, Template], ...]:
    return tuple((path.stem, _load_file(path)) for path in sorted(Path(directory).glob("*.yaml")))


def load_catalog(directory: Path | None = None) -> dict[str, Template]:
    """All templates by name, read once per process (files are part of the release).

    Raises TemplateError when a file is invalid, so a broken template fails at start-up
    and in the unit tests rather than when a user deploys it.
    """
    return dict(_load_dir(str(directory or TEMPLATES_DIR)))


def get_template(name: str, directory: Path | None = None) -> Template | None:
    """The template called `name`, or None."""
    return load_catalog(directory).get(name)


def required_missing(template: Template, env: Mapping[str, str]) -> list[str]:
    """Required env keys the user did not supply (or supplied empty), sorted.

    Generated secrets are not "required": `fill_generated_env` provides them.
    """
    required = {key for service in template.services for key in service.required_env}
    return sorted(key for key in required if not env.get(key))


def generated_keys(template: Template) -> list[str]:
    """Env keys the template generates when the user does not supply them, sorted."""
    return sorted({key for s in template.services for key in s.generated_secrets})


def fill_generated_env(template: Template, env: Mapping[str, str], rng: random.Random) -> dict[str, str]:
    """`env` plus a random value for every generated secret not supplied (or empty).

    Called ONCE, by the API, when a deployment is created; the result is stored in the
    spec (a Pulumi secret). Generating inside the program instead would mint a new
    password on every `up`. Keys are filled in sorted order so a seeded `rng` gives the
    same result every time; production passes `secrets.SystemRandom()`.
    """
    filled = dict(env)
    for key in generated_keys(template):
        if not filled.get(key):
            filled[key] = "".join(rng.choice(_SECRET_ALPHABET) for _ in range(GENERATED_SECRET_LENGTH))
    return filled


def keep_generated_env(template: Template, current: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    """`new` plus the current value of every generated secret `new` leaves out (or empty).

    For env replacements (PUT config): the database was initialised with the generated
    password, so dropping it would break DATABASE_URL wiring, and generating a new one
    would not change the password inside the existing data volume.
    """
    kept = dict(new)
    for key in generated_keys(template):
        if not kept.get(key) and current.get(key):
            kept[key] = current[key]
    return kept


def validate_for_template(template: Template, spec: DeploymentSpec) -> list[str]:
    """The template-specific rules for `spec` (see `programs.validate.validate_spec` for the rest)."""
    errors: list[str] = []
    if spec.template != template.name:
        errors.append(f"spec is for template {spec.template!r}, not {template.name!r}")
    if template.raw_image and not spec.image:
        errors.append("image is required")
    missing = required_missing(template, spec.env)
    if missing:
        errors.append(f"missing required env vars: {', '.join(missing)}")
    errors.extend(budget_errors(resolve_services(template, spec), spec.tenancy))
    return errors


def effective_image(template: Template, spec: DeploymentSpec) -> str:
    """The primary service's image: what runs, and what auto-update compares against."""
    return spec.image or template.primary.image


def host_for(spec: DeploymentSpec, service: str, first: bool) -> str:
    """`<name>.<base_domain>` for the first public service, else
    `<service>-<name>.<base_domain>`."""
    label = spec.name if first else f"{service}-{spec.name}"
    return f"{label}.{spec.base_domain}"


def _interpolate(value: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        found = env.get(match.group(1), "")
        if match.group(2) == "url":
            return quote(found, safe="")
        if match.group(2) == "hex":
            return "".join(f"\\x{byte:02x}" for byte in found.encode())
        return found

    return _REFERENCE.sub(substitute, value)


class ResolvedService(msgspec.Struct, frozen=True, kw_only=True):
    """Exactly what the program renders for one service."""

    name: str
    image: str
    port: int
    env: dict[str, str]
    replicas: int
    strategy: Literal["RollingUpdate", "Recreate"]
    volume: Volume | None
    host: str | None  # None: no Ingress
    primary: bool
    resources: Resources
    command: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # `env` holds secret values: keep them out of logs and tracebacks.
        return f"ResolvedService(name={self.name!r}, image={self.image!r}, host={self.host!r})"

    def __rich_repr__(self) -> Iterator[tuple[str, object]]:
        yield "name", self.name
        yield "image", self.image
        yield "host", self.host


def resolve_services(template: Template, spec: DeploymentSpec) -> list[ResolvedService]:
    """Template + spec -> per-service image, port, env, replicas, strategy and host.

    A service with a volume always gets one replica and the Recreate strategy: its
    volume is ReadWriteOnce, and two database processes must never share a data
    directory, whatever the deployment's strategy says. Ingress hosts exist only for
    public services of a public deployment.
    """
    resolved: list[ResolvedService] = []
    first_public = True
    for index, service in enumerate(template.services):
        primary = index == 0
        image = (spec.image if primary and spec.image else None) or service.image
        port = (spec.container_port if primary and spec.container_port else None) or service.port
        env = {key: _interpolate(value, spec.env) for key, value in service.env.items()}
        for key in (*service.required_env, *service.generated_secrets):
            if key in spec.env:
                env[key] = spec.env[key]
        if service.user_env:
            env.update(spec.env)
        host = None
        if service.public and spec.visibility == "public":
            host = host_for(spec, service.name, first_public)
            first_public = False
        if service.volume is not None:
            replicas, strategy = 1, "Recreate"
        else:
            replicas = spec.replicas
            strategy = "Recreate" if spec.strategy == "recreate" else "RollingUpdate"
        resolved.append(
            ResolvedService(
                name=service.name,
                image=image,
                port=port,
                env=env,
                replicas=replicas,
                strategy=strategy,
                volume=service.volume,
                host=host,
                primary=primary,
                resources=spec.tenancy.resources.get(template.name, {}).get(service.name, service.resources),
                command=service.command,
            )
        )
    return resolved
