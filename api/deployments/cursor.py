"""The `cursor` of a paged deployments list: where the next page starts, signed.

A cursor is opaque to clients: the position (the last row id of the page before)
and an HMAC of it under a key derived from the service's passphrase, which every
process of one service shares, so a cursor made by one API process is good at any
other. Changing one character of it is a 400, never a page from somewhere else; and
whatever position a cursor names, each page is read through the caller's own
visibility filter, so a cursor can never widen what a caller sees.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac

from api.errors import Invalid

_MAC_CHARS = 22  # 132 bits of the HMAC, base64url


@functools.cache
def _key(passphrase: str) -> bytes:
    return hashlib.sha256(b"shipstack deployments list cursor\0" + passphrase.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _mac(passphrase: str, position: bytes) -> str:
    return _b64(hmac.new(_key(passphrase), position, hashlib.sha256).digest())[:_MAC_CHARS]


def encode(after_id: int, passphrase: str) -> str:
    position = str(after_id).encode()
    return f"{_b64(position)}.{_mac(passphrase, position)}"


def decode(cursor: str, passphrase: str) -> int:
    """The row id a cursor continues after; Invalid (400) unless this service made it."""
    body, _, mac = cursor.partition(".")
    try:
        position = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        position = b""
    if not position.isdigit() or not hmac.compare_digest(mac.encode(), _mac(passphrase, position).encode()):
        raise Invalid("cursor is not one this service gave out: use the Link header's next URL", "bad_cursor")
    return int(position)
