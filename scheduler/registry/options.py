"""The registry client's settings: credentials per registry host, where it may
connect and fetch tokens, and the limits that keep one registry from hurting the
service (deadlines, body caps, concurrency)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from scheduler.registry.names import DOCKER_HUB, registry_host
from stacks.settings import RegistrySettings

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


def realm_hosts(extra: Mapping[str, list[str]]) -> dict[str, frozenset[str]]:
    """The operator's `{"registry host": ["token host", ...]}` on top of the defaults
    (Docker Hub's auth.docker.io, GitLab's gitlab.com)."""
    hosts = dict(DEFAULT_REALM_HOSTS)
    for host, realms in extra.items():
        key = registry_host(host)
        hosts[key] = hosts.get(key, frozenset()) | {r.strip().lower() for r in realms if r.strip()}
    return hosts


@dataclass(frozen=True)
class ClientOptions:
    """Limits and settings of a `RegistryClient`; `from_settings` takes the operator's ones."""

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
    def from_settings(cls, registry: RegistrySettings) -> ClientOptions:
        """The operator's settings (`stacks.settings`); Docker Hub's aliases all land
        on registry-1.docker.io."""
        credentials = {registry_host(h): Credentials(c.username, c.password) for h, c in registry.credentials.items()}
        return cls(
            credentials=credentials,
            insecure_hosts=registry.insecure_hosts,
            allow_private=registry.allow_private,
            realm_hosts=realm_hosts(registry.realm_hosts),
            timeout_s=registry.timeout_s,
            request_deadline_s=registry.request_deadline_s,
            registry_deadline_s=registry.poll_deadline_s,
            registry_concurrency=registry.concurrency,
            max_pages=registry.max_pages,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClientOptions:
        """From the registry variables in `env`, parsed by the one settings object."""
        from stacks.settings import Settings

        return cls.from_settings(Settings.from_env(env).registry)
