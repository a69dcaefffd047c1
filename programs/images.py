"""OCI image references: parsing `[registry[:port]/]path[:tag][@digest]` and its rule."""

from __future__ import annotations

import re

import msgspec

from programs.quoting import show


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
        raise ValueError(f"image {show(ref)} must not contain whitespace")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"image {show(ref)} has an invalid digest (want sha256:<64 hex digits>)")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ValueError(
                f"image {show(ref)} has an invalid tag (letters, digits, '_', '.', '-', "
                "at most 128, not starting with '.' or '-')"
            )
    if not rest:
        raise ValueError(f"image {show(ref)} has no repository name")
    if len(rest) > MAX_IMAGE_NAME_LENGTH:
        raise ValueError(f"image name must be at most {MAX_IMAGE_NAME_LENGTH} characters")
    domain = None
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        match = _DOMAIN.fullmatch(first)
        if not match:
            raise ValueError(f"image {show(ref)} has an invalid registry {show(first)}")
        port = match.group("port")
        if port is not None and not 0 < int(port) <= 65535:
            raise ValueError(f"image {show(ref)} has an invalid registry port")
        domain, rest = first, remainder
    for component in rest.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise ValueError(
                f"image {show(ref)}: path component {show(component)} must be lowercase "
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
