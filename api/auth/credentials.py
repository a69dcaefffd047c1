"""Making, parsing and hashing secrets: API keys, session tokens, CSRF tokens, passwords.

API keys look like `ssk_ab12cd34_<43 url-safe chars>`: `ssk_` makes leaked keys easy
to recognise (secret scanners, logs), the next 8 characters are the public id stored
in clear (`prefix`), the rest is 256 bits of randomness. Keys and session tokens are
hashed with SHA-256: they are high-entropy, so a slow hash adds nothing, and they
are checked on every request. Passwords are low-entropy and use argon2id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

KEY_MARK = "ssk_"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_KEY_RE = re.compile(r"^(ssk_[a-z0-9]{8})_([A-Za-z0-9_-]{43})$")


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hashes_equal(a: str, b: str) -> bool:
    """Constant-time, so response timing does not reveal how much of a hash matched."""
    return hmac.compare_digest(a.encode(), b.encode())


def new_api_key() -> tuple[str, str, str]:
    """(full key to show once, public prefix, hash to store)."""
    prefix = KEY_MARK + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, sha256_hex(key)


def key_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, else None (no database lookup needed)."""
    match = _KEY_RE.match(key)
    return match.group(1) if match else None


def new_session_token() -> tuple[str, str]:
    """(cookie value, id stored in the sessions table)."""
    token = secrets.token_urlsafe(32)
    return token, sha256_hex(token)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


_hasher = PasswordHasher()
# Verified against when the user does not exist, so "no such user" and "wrong
# password" take the same time and user names cannot be probed by timing.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """True after argon2 parameters are raised, so hashes upgrade at the next login."""
    return _hasher.check_needs_rehash(password_hash)
