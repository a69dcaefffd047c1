"""Names: which registry host and repository an image lives in, and which tags and
digests a registry may hand back.

A registry is a stranger: its tag list and headers are checked against the OCI
grammar before anything else sees them, so a tag or digest that reaches a
decision, an operation or a page is short and plain (letters, digits, `._-:`).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import msgspec

from programs.images import ImageRef, parse_image_ref

DOCKER_HUB = "registry-1.docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})

MAX_TAG_LENGTH = 128  # the distribution spec's limit
# Checked by length first, so the regex never sees a long string.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}", re.ASCII)


class Repository(msgspec.Struct, frozen=True, order=True):
    """Where a repository's API lives: `host` (with port) and the path under /v2/."""

    host: str
    path: str

    @property
    def key(self) -> str:
        """One name per repository however users spell it (`nginx`, `docker.io/library/nginx`)."""
        return f"{self.host}/{self.path}"


def registry_host(domain: str | None) -> str:
    """The API host of an image's registry: Docker Hub's short and alias names map to
    registry-1.docker.io, where its API actually answers."""
    if domain is None or domain.lower() in DOCKER_HUB_ALIASES:
        return DOCKER_HUB
    return domain


def repository_of(image: str | ImageRef) -> Repository:
    """The repository an image reference points at (raises ValueError for a bad ref).

    Docker Hub keeps official images under `library/`, so `nginx` is `library/nginx`.
    """
    ref = parse_image_ref(image) if isinstance(image, str) else image
    host = registry_host(ref.domain)
    path = ref.path
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return Repository(host=host, path=path)


def is_loopback(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 and ::1, with or without a port (where plain http is fine)."""
    name = urlsplit(f"//{host}").hostname or host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_tag(value: object) -> bool:
    """A tag as the distribution spec allows it: at most 128 of `[A-Za-z0-9_.-]`."""
    return isinstance(value, str) and len(value) <= MAX_TAG_LENGTH and _TAG.fullmatch(value) is not None


def is_digest(value: object) -> bool:
    """`sha256:<64 hex>` or `sha512:<128 hex>`: the only digests pinned into an image."""
    return isinstance(value, str) and len(value) <= 135 and _DIGEST.fullmatch(value) is not None
