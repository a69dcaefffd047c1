"""The OCI registry client, one module per job; this package's names are its API.

- `names`      registry hosts, repositories, and which tags and digests are well formed
- `options`    settings: credentials per host, allowlists, deadlines, caps
- `errors`     failures whose messages are clean enough to store and show
- `deadline`   overall deadlines on a request and on a registry's share of a poll
- `addresses`  the SSRF guard: which addresses a connection may reach
- `auth`       challenges, token realms, credentials per host, the token cache
- `exchange`   one bounded HTTP exchange: deadline, caps, redirects, 429s
- `client`     `RegistryClient`: tag lists and digests
"""

from scheduler.registry.auth import Challenge, parse_challenge
from scheduler.registry.client import MANIFEST_ACCEPT, MANIFEST_TYPES, RegistryClient, TagList
from scheduler.registry.deadline import within
from scheduler.registry.errors import (
    NotFound,
    RateLimited,
    Refused,
    RegistryError,
    TimedOut,
    TooLarge,
    Unauthorized,
    clean_text,
)
from scheduler.registry.exchange import Stats, parse_retry_after
from scheduler.registry.names import (
    DOCKER_HUB,
    DOCKER_HUB_ALIASES,
    Repository,
    is_digest,
    is_loopback,
    is_tag,
    registry_host,
    repository_of,
)
from scheduler.registry.options import ClientOptions, Credentials

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_ALIASES",
    "MANIFEST_ACCEPT",
    "MANIFEST_TYPES",
    "Challenge",
    "ClientOptions",
    "Credentials",
    "NotFound",
    "RateLimited",
    "Refused",
    "RegistryClient",
    "RegistryError",
    "Repository",
    "Stats",
    "TagList",
    "TimedOut",
    "TooLarge",
    "Unauthorized",
    "clean_text",
    "is_digest",
    "is_loopback",
    "is_tag",
    "parse_challenge",
    "parse_retry_after",
    "registry_host",
    "repository_of",
    "within",
]
