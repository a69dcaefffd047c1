"""The registry client's settings: credentials per registry host, where it may
connect and fetch tokens, and the limits that keep one registry from hurting the
service (deadlines, body caps, concurrency)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from scheduler.registry.addresses import Allowlist
from scheduler.registry.names import DOCKER_HUB, registry_host

AUTH_ENV = "SHIPSTACK_REGISTRY_AUTH"
INSECURE_ENV = "SHIPSTACK_REGISTRY_INSECURE"
ALLOW_PRIVATE_ENV = "SHIPSTACK_REGISTRY_ALLOW_PRIVATE"
REALM_HOSTS_ENV = "SHIPSTACK_REGISTRY_REALM_HOSTS"

# Registries whose token service lives on another host. Any other registry must
# serve its tokens itself, unless the operator lists the realm host for it.
DEFAULT_REALM_HOSTS: Mapping[str, frozenset[str]] = {
    DOCKER_HUB: frozenset({"auth.docker.io"}),
    "registry.gitlab.com": frozenset({"gitlab.com"}),
}


class Credentials(msgspec.Struct, frozen=True):
    username: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"Credentials(username={self.username!r})"


def load_credentials(raw: str | None) -> dict[str, Credentials]:
    """`{"host": {"username": ..., "password": ...}}` from SHIPSTACK_REGISTRY_AUTH.

    Keys are registry hosts as users write them in image references; Docker Hub's
    aliases all land on registry-1.docker.io. Raises ValueError without echoing values.
    """
    if not raw:
        return {}
    try:
        parsed = msgspec.json.decode(raw, type=dict[str, Credentials])
    except msgspec.DecodeError:
        raise ValueError(f'{AUTH_ENV} must be JSON {{"host": {{"username": ..., "password": ...}}}}') from None
    return {registry_host(host): creds for host, creds in parsed.items()}


def load_realm_hosts(raw: str | None) -> dict[str, frozenset[str]]:
    """`{"registry host": ["token host", ...]}` from SHIPSTACK_REGISTRY_REALM_HOSTS,
    on top of the defaults (Docker Hub's auth.docker.io, GitLab's gitlab.com)."""
    hosts = dict(DEFAULT_REALM_HOSTS)
    if not raw:
        return hosts
    try:
        parsed = msgspec.json.decode(raw, type=dict[str, list[str]])
    except msgspec.DecodeError:
        raise ValueError(f'{REALM_HOSTS_ENV} must be JSON {{"registry host": ["token host", ...]}}') from None
    for host, realms in parsed.items():
        key = registry_host(host)
        hosts[key] = hosts.get(key, frozenset()) | {r.strip().lower() for r in realms if r.strip()}
    return hosts


def _csv(value: str | None) -> frozenset[str]:
    return frozenset(h.strip() for h in (value or "").split(",") if h.strip())


@dataclass(frozen=True)
class ClientOptions:
    """Limits and settings of a `RegistryClient`; `from_env` reads the operator's ones."""

    credentials: Mapping[str, Credentials] = field(default_factory=dict)
    insecure_hosts: frozenset[str] = frozenset()
    # Registry hosts (`host` or `host:port`) and networks (CIDR) that may be reached on
    # loopback, private, link-local or other non-public addresses; nothing else may.
    allow_private: frozenset[str] = frozenset()
    # Per registry host, the other hosts its token realm may name.
    realm_hosts: Mapping[str, frozenset[str]] = field(default_factory=lambda: dict(DEFAULT_REALM_HOSTS))
    timeout_s: float = 15.0  # one read, write or connect
    connect_timeout_s: float = 5.0
    request_deadline_s: float = 30.0  # one request, start to last byte, whatever the pace
    registry_deadline_s: float = 120.0  # one registry's share of one poll
    registry_concurrency: int = 4  # repositories of one registry polled at once (of the poll's 8 workers)
    page_size: int = 1000  # ECR's maximum; Quay's is 100 (handled on its 400)
    max_pages: int = 20
    max_redirects: int = 3  # same host only
    max_page_bytes: int = 1024 * 1024  # one tag-list page: 1,000 tags of 128 characters is 140 KB
    max_manifest_bytes: int = 4 * 1024 * 1024  # what registries accept for a manifest
    max_token_bytes: int = 64 * 1024
    max_error_bytes: int = 16 * 1024  # read for the message, then dropped
    max_retries: int = 3  # per request, on 429 / 503
    max_retry_wait_s: float = 60.0  # a longer Retry-After is not slept through in-thread
    jitter: float = 0.1  # fraction added on top of Retry-After, never subtracted

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientOptions:
        e = os.environ if env is None else env
        options = cls(
            credentials=load_credentials(e.get(AUTH_ENV)),
            insecure_hosts=_csv(e.get(INSECURE_ENV)),
            allow_private=_csv(e.get(ALLOW_PRIVATE_ENV)),
            realm_hosts=load_realm_hosts(e.get(REALM_HOSTS_ENV)),
            timeout_s=float(e.get("SHIPSTACK_REGISTRY_TIMEOUT", "15")),
            request_deadline_s=float(e.get("SHIPSTACK_REGISTRY_REQUEST_DEADLINE", "30")),
            registry_deadline_s=float(e.get("SHIPSTACK_REGISTRY_POLL_DEADLINE", "120")),
            registry_concurrency=int(e.get("SHIPSTACK_REGISTRY_CONCURRENCY", "4")),
            max_pages=int(e.get("SHIPSTACK_REGISTRY_MAX_PAGES", "20")),
        )
        Allowlist.parse(options.allow_private)  # a bad network fails at start, not at the first poll
        if options.request_deadline_s <= 0 or options.registry_deadline_s <= 0 or options.registry_concurrency < 1:
            raise ValueError("registry deadlines must be positive and SHIPSTACK_REGISTRY_CONCURRENCY at least 1")
        return options
