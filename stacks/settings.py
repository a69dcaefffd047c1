"""The one settings object: every environment variable the service reads, parsed once.

`Settings.from_env()` is called where a process starts (`python -m api serve`, the
`shipstack` CLI, Alembic) and the result is passed down; nothing else in the service
reads `os.environ`. `VARIABLES` lists each variable with its default exactly as the
README's settings table shows it (a test keeps the two the same).

Every setting has an embedded default so `make run` works on a fresh machine: a data
folder under the checkout, SQLite, a `file://` Pulumi backend inside the data folder
and the local cluster's kubeconfig.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import msgspec

from programs.tenancy import (
    PRIVATE_NETWORKS,
    Compute,
    Quota,
    Resources,
    Tenancy,
    parse_label_selector,
    validate_tenancy,
)
from stacks.variables import BY_NAME, DEFAULT_PASSPHRASE, readme_table

REPO_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


class SettingsError(ValueError):
    """A variable with a value the service cannot use; the message names it."""


class RegistryCredentials(msgspec.Struct, frozen=True):
    username: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"RegistryCredentials(username={self.username!r})"


class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True):
    data_dir: Path
    database_url: str
    role: str = "all"  # all | api | worker
    base_domain: str = "shipstack.localhost"
    # The local cluster has an ingress status writer; a real cluster without an
    # ingress controller sets this false so Ingresses are not awaited.
    ingress_controller: bool = True
    billing_enabled: bool = False
    # Rollouts wait on the cluster, not the CPU: 10 creates at once take 1.7x one with
    # 16 workers and 4.1x with 4 (bench/parallel_creates.py).
    workers: int = 16
    # `serve` with role `all` runs the operations in a child `python -m api worker` at
    # this niceness, so their Python work (the inline program, the engine's events)
    # never holds the API's GIL or CPU: read p99 under load 67-91 ms against 84-173 ms
    # in one process (bench/write_load.py). False keeps them in the API process.
    worker_process: bool = True
    worker_nice: int = 10
    previews: int = 2  # at once in one API process, in their own threads (api.http.engine_work)


class EngineSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a pulumi process needs; hashable, so workspaces are cached by it."""

    backend_url: str
    passphrase: str
    pulumi_home: Path
    cache_dir: Path
    kubeconfig: Path | None
    stacks_dir: Path  # one persistent Pulumi workspace folder (salt, config)
    # How long Pulumi waits for a rollout (Deployment Available, Service endpoints,
    # Ingress address) before the update fails: "the deployment's timeout".
    rollout_timeout_s: int = 300
    niceness: int = 10
    # The PATH pulumi's children (the provider, the language host) are started with.
    path: str = ""


class AuthSettings(msgspec.Struct, frozen=True, kw_only=True):
    rate_limit_per_minute: int = 600
    session_ttl_s: int = 12 * 3600
    # Off by default only because `make run` serves plain http on localhost.
    session_cookie_secure: bool = False
    # Failed logins allowed per (user, client IP) in each window before 429.
    login_max_attempts: int = 5
    login_window_s: int = 300
    # Live (unrevoked, unexpired) API keys one user may hold; each one is a credential
    # to check on every request and to re-check on every open stream.
    max_api_keys: int = 100


class SchedulerSettings(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool = True
    poll_interval_s: float = 300.0
    lease_ttl_s: float = 30.0
    max_workers: int = 8
    # 0: no scheduled drift checks at all (checks on demand still run).
    drift_interval_s: float = 3600.0
    drift_concurrency: int = 2
    # Seconds between metrics samples (scheduler/metrics_sampler.py); 0 samples nothing.
    metrics_interval_s: float = 60.0

    @property
    def tick_s(self) -> float:
        """The poll job's period: at most a minute, so per-deployment intervals down to
        a minute are honoured."""
        return min(self.poll_interval_s, 60.0)

    @property
    def drift_tick_s(self) -> float:
        """The drift job's period. Each run queues at most `drift_concurrency` checks
        minus those still queued or running, so the period bounds the throughput:
        every 2 s, two slots give one check a second, about what two cores can do
        (bench/drift_check.py); a run over 1,000 deployments costs ~20 ms."""
        return min(self.drift_interval_s, 2.0)


class RegistrySettings(msgspec.Struct, frozen=True, kw_only=True):
    """The operator's registry settings, as given (the client normalises hosts)."""

    credentials: dict[str, RegistryCredentials] = {}
    insecure_hosts: frozenset[str] = frozenset()
    allow_private: frozenset[str] = frozenset()
    realm_hosts: dict[str, list[str]] = {}
    timeout_s: float = 15.0
    request_deadline_s: float = 30.0
    poll_deadline_s: float = 120.0
    concurrency: int = 4
    max_pages: int = 20


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    service: ServiceSettings
    engine: EngineSettings
    # What confines each deployment's namespace (network, quota, sizes): it travels
    # into the stack config with the spec, so the program reads it from there.
    tenancy: Tenancy = Tenancy()
    auth: AuthSettings = AuthSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    registry: RegistrySettings = RegistrySettings()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Parses `env` (the process environment by default); SettingsError names a bad variable."""
        e = _Env(os.environ if env is None else env)
        backend = e.raw.get("PULUMI_BACKEND_URL") or ""
        if backend and not backend.startswith("file://") and not e.raw.get("PULUMI_CONFIG_PASSPHRASE"):
            raise SettingsError(
                f"PULUMI_BACKEND_URL is {backend.split('://')[0]}://..., a shared backend, and "
                "PULUMI_CONFIG_PASSPHRASE is not set: the built-in passphrase would let anyone who can read the "
                "state decrypt every env value in it. Set PULUMI_CONFIG_PASSPHRASE to a secret of your own (the "
                "same on every replica)."
            )
        data_dir = Path(e.text("SHIPSTACK_DATA", str(REPO_ROOT / ".shipstack"))).resolve()
        cache = Path(e.text("SHIPSTACK_CACHE", str(Path.home() / ".cache" / "shipstack")))
        return cls(
            service=ServiceSettings(
                data_dir=data_dir,
                database_url=e.text("SHIPSTACK_DATABASE_URL", f"sqlite:///{data_dir / 'shipstack.db'}"),
                role=e.parse("SHIPSTACK_ROLE", _one_of("all", "api", "worker")),
                base_domain=e.text("SHIPSTACK_BASE_DOMAIN"),
                ingress_controller=e.parse("SHIPSTACK_INGRESS_CONTROLLER", _bool),
                billing_enabled=e.parse("SHIPSTACK_BILLING", _bool),
                workers=e.parse("SHIPSTACK_WORKERS", _positive(int)),
                worker_process=e.parse("SHIPSTACK_WORKER_PROCESS", _bool),
                worker_nice=e.parse("SHIPSTACK_WORKER_NICE", _niceness),
                previews=e.parse("SHIPSTACK_PREVIEWS", _positive(int)),
            ),
            engine=EngineSettings(
                backend_url=e.text("PULUMI_BACKEND_URL", f"file://{data_dir / 'state'}"),
                passphrase=e.text("PULUMI_CONFIG_PASSPHRASE"),
                pulumi_home=Path(e.text("PULUMI_HOME", str(cache / "pulumi-home"))),
                cache_dir=cache,
                kubeconfig=Path(e.text("KUBECONFIG", str(data_dir / "cluster" / "kubeconfig"))),
                stacks_dir=data_dir / "stacks",
                rollout_timeout_s=e.parse("SHIPSTACK_ROLLOUT_TIMEOUT", _positive(int)),
                niceness=e.parse("SHIPSTACK_ENGINE_NICE", _niceness),
                path=f"{cache / 'bin'}{os.pathsep}{e.raw.get('PATH', '')}",
            ),
            tenancy=_tenancy(e),
            auth=AuthSettings(
                rate_limit_per_minute=e.parse("SHIPSTACK_RATE_LIMIT", _non_negative(int)),
                session_ttl_s=e.parse("SHIPSTACK_SESSION_TTL", _positive(int)),
                session_cookie_secure=e.parse("SHIPSTACK_SECURE_COOKIES", _bool),
                login_max_attempts=e.parse("SHIPSTACK_LOGIN_MAX_ATTEMPTS", _non_negative(int)),
                login_window_s=e.parse("SHIPSTACK_LOGIN_WINDOW", _positive(int)),
                max_api_keys=e.parse("SHIPSTACK_MAX_API_KEYS", _positive(int)),
            ),
            scheduler=SchedulerSettings(
                enabled=e.parse("SHIPSTACK_SCHEDULER", _bool),
                poll_interval_s=e.parse("SHIPSTACK_POLL_INTERVAL", _positive(float)),
                lease_ttl_s=e.parse("SHIPSTACK_SCHEDULER_LEASE", _positive(float)),
                drift_interval_s=e.parse("SHIPSTACK_DRIFT_INTERVAL", _non_negative(float)),
                drift_concurrency=e.parse("SHIPSTACK_DRIFT_CONCURRENCY", _positive(int)),
                metrics_interval_s=e.parse("SHIPSTACK_METRICS_INTERVAL", _non_negative(float)),
            ),
            registry=RegistrySettings(
                credentials=e.parse("SHIPSTACK_REGISTRY_AUTH", _credentials),
                insecure_hosts=e.parse("SHIPSTACK_REGISTRY_INSECURE", _host_set),
                allow_private=e.parse("SHIPSTACK_REGISTRY_ALLOW_PRIVATE", _networks),
                realm_hosts=e.parse("SHIPSTACK_REGISTRY_REALM_HOSTS", _realm_hosts),
                timeout_s=e.parse("SHIPSTACK_REGISTRY_TIMEOUT", _positive(float)),
                request_deadline_s=e.parse("SHIPSTACK_REGISTRY_REQUEST_DEADLINE", _positive(float)),
                poll_deadline_s=e.parse("SHIPSTACK_REGISTRY_POLL_DEADLINE", _positive(float)),
                concurrency=e.parse("SHIPSTACK_REGISTRY_CONCURRENCY", _positive(int)),
                max_pages=e.parse("SHIPSTACK_REGISTRY_MAX_PAGES", _positive(int)),
            ),
        )

    @property
    def default_passphrase(self) -> bool:
        """The built-in passphrase: anyone with the state can decrypt every secret in it."""
        return self.engine.passphrase == DEFAULT_PASSPHRASE

    def with_database(self, url: str) -> Settings:
        return msgspec.structs.replace(self, service=msgspec.structs.replace(self.service, database_url=url))


# --- parsing -------------------------------------------------------------------------


class _Env:
    def __init__(self, raw: Mapping[str, str]) -> None:
        self.raw = raw

    def text(self, name: str, computed_default: str | None = None) -> str:
        """The value, or the default: `computed_default` where the README's is a description."""
        value = self.raw.get(name)
        if value:
            return value
        return computed_default if computed_default is not None else BY_NAME[name].default

    def parse(self, name: str, parser: Callable[[str], T]) -> T:
        text = self.text(name)
        try:
            return parser(text)
        except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SettingsError(f"{name}={_shown(name, text)} is not valid: {exc}") from None


def _shown(name: str, value: str) -> str:
    return "<hidden>" if name == "SHIPSTACK_REGISTRY_AUTH" else repr(value)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(text: str) -> T:
        value = kind(text)
        if value <= 0:  # type: ignore[operator]
            raise ValueError("must be greater than 0")
        return value

    return parse


def _non_negative(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(text: str) -> T:
        value = kind(text)
        if value < 0:  # type: ignore[operator]
            raise ValueError("must not be negative")
        return value

    return parse


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


def _niceness(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 19:
        raise ValueError("must be between 0 and 19")
    return value


def _host_set(text: str) -> frozenset[str]:
    return frozenset(h.strip() for h in text.split(",") if h.strip())


def _tenancy(e: _Env) -> Tenancy:
    deny = e.raw.get("SHIPSTACK_EGRESS_DENY")
    tenancy = Tenancy(
        ingress_namespace=e.parse("SHIPSTACK_INGRESS_NAMESPACE_SELECTOR", parse_label_selector),
        egress_deny=PRIVATE_NETWORKS if not deny else () if deny.strip() == "none" else tuple(_host_set(deny)),
        quota=Quota(
            cpu=e.text("SHIPSTACK_QUOTA_CPU"),
            memory=e.text("SHIPSTACK_QUOTA_MEMORY"),
            pods=e.parse("SHIPSTACK_QUOTA_PODS", _positive(int)),
            volume_claims=e.parse("SHIPSTACK_QUOTA_VOLUME_CLAIMS", _non_negative(int)),
            storage=e.text("SHIPSTACK_QUOTA_STORAGE"),
        ),
        container_max=Compute(
            cpu=e.text("SHIPSTACK_CONTAINER_MAX_CPU"), memory=e.text("SHIPSTACK_CONTAINER_MAX_MEMORY")
        ),
        resources=e.parse("SHIPSTACK_RESOURCES", _resources),
    )
    errors = validate_tenancy(tenancy)
    if errors:
        raise SettingsError(
            "the namespace settings (SHIPSTACK_QUOTA_*, SHIPSTACK_CONTAINER_MAX_*, "
            f"SHIPSTACK_RESOURCES, SHIPSTACK_EGRESS_DENY) are not valid: {'; '.join(errors)}"
        )
    return tenancy


def _resources(text: str) -> dict[str, dict[str, Resources]]:
    if not text:
        return {}
    try:
        return msgspec.json.decode(text, type=dict[str, dict[str, Resources]])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"expected JSON {{template: {{service: {{requests, limits}}}}}}: {exc}") from None


def _networks(text: str) -> frozenset[str]:
    """Hosts and CIDR networks; a `/` entry that is not a network fails at start, not at the first poll."""
    entries = _host_set(text)
    for entry in entries:
        if "/" in entry:
            ipaddress.ip_network(entry, strict=False)
    return entries


def _realm_hosts(text: str) -> dict[str, list[str]]:
    if not text:
        return {}
    try:
        return msgspec.json.decode(text, type=dict[str, list[str]])
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ValueError('expected JSON {"registry host": ["token host", ...]}') from None


def _credentials(text: str) -> dict[str, RegistryCredentials]:
    """`{"host": {"username": ..., "password": ...}}`; the error never echoes values."""
    if not text:
        return {}
    try:
        return msgspec.json.decode(text, type=dict[str, RegistryCredentials])
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ValueError('expected JSON {"host": {"username": "...", "password": "..."}}') from None


if __name__ == "__main__":
    print(readme_table())
