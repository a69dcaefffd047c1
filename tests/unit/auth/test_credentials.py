"""Key, token and password primitives."""

from __future__ import annotations

import hashlib

from api.auth.credentials import (
    hash_password,
    hashes_equal,
    key_prefix,
    new_api_key,
    new_csrf_token,
    new_session_token,
    sha256_hex,
    verify_password,
)


def test_api_key_shape_prefix_and_hash() -> None:
    key, prefix, digest = new_api_key()
    assert key.startswith("ssk_") and len(key) == 56
    assert key[:12] == prefix and key[12] == "_"
    assert key_prefix(key) == prefix
    assert digest == hashlib.sha256(key.encode()).hexdigest()
    assert len({new_api_key()[0] for _ in range(50)}) == 50


def test_malformed_keys_have_no_prefix() -> None:
    key, _, _ = new_api_key()
    for bad in ("", "ssk_", key[:-1], key + "x", "xyz_" + key[4:], key.upper(), key[:12] + "-" + key[13:]):
        assert key_prefix(bad) is None, bad


def test_tokens_are_random_and_hash_compare_is_exact() -> None:
    token, token_hash = new_session_token()
    assert token_hash == sha256_hex(token) and token not in token_hash
    assert new_csrf_token() != new_csrf_token()
    assert hashes_equal("abc", "abc") and not hashes_equal("abc", "abd")


def test_passwords_use_argon2id() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "Correct horse")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")
