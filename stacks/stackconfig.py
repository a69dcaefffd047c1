"""A stack's config file (`Pulumi.<stack>.yaml`): written by shipstack, read without
a pulumi process.

The file's text is the stack config of record. It is kept in the database (the
deployment row's `stack_config`), recorded in the same transaction as the result of
the update that applied it, and rendered into a private per-operation file that the
CLI reads with `--config-file`; so no secret (env values, the kubeconfig) is ever on
a command line and any host can run any deployment.

Secrets use Pulumi's passphrase scheme, byte for byte what the CLI writes: AES-256-GCM
values `v1:<nonce>:<ciphertext>` under a key derived by PBKDF2-SHA256 (1,000,000
rounds) from the passphrase and the file's salt (`encryptionsalt: v1:<salt>:<the
word "pulumi" encrypted>`). A derived key is cached per salt, so only the first use
of a stack in a process pays for it (~0.3 s of CPU).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import threading
from collections.abc import Mapping

import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SALT_BYTES = 8  # what the CLI uses
NONCE_BYTES = 12
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: ~10x faster


class StackConfigError(RuntimeError):
    """Config text that cannot be read: the message names the problem, never a value."""


@functools.lru_cache(maxsize=4096)
def _derived(passphrase: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, 1_000_000, 32)


# One derivation per salt at a time: forty requests reading one deployment's config at
# once would otherwise each derive the same key (the cache fills only when the first
# is done), forty times ~0.3 s of CPU while every other request waits for a core.
_DERIVING = [threading.Lock() for _ in range(64)]


def derive_key(passphrase: str, salt: bytes) -> bytes:
    with _DERIVING[hash(salt) % len(_DERIVING)]:
        return _derived(passphrase, salt)


def encrypt(key: bytes, plaintext: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), None)
    return f"v1:{base64.b64encode(nonce).decode()}:{base64.b64encode(sealed).decode()}"


def decrypt(key: bytes, value: str) -> str:
    try:
        version, nonce, ciphertext = value.split(":")
        if version != "v1":
            raise StackConfigError(f"unknown secret version {version!r}")
        return AESGCM(key).decrypt(base64.b64decode(nonce), base64.b64decode(ciphertext), None).decode()
    except StackConfigError:
        raise
    except Exception:
        raise StackConfigError("a secret cannot be decrypted with this passphrase") from None


def _parse(text: str) -> dict:
    try:
        doc = yaml.load(text, Loader=_LOADER) or {}
    except yaml.YAMLError:
        raise StackConfigError("the stack config is not YAML") from None
    if not isinstance(doc, dict):
        raise StackConfigError("the stack config is not a YAML mapping")
    return doc


def key_of(salt_line: str, passphrase: str) -> bytes:
    """The key of a file's `encryptionsalt`, checked against the passphrase."""
    parts = salt_line.split(":", 2)
    if len(parts) != 3 or parts[0] != "v1":
        raise StackConfigError("the stack config has no passphrase salt")
    key = derive_key(passphrase, base64.b64decode(parts[1]))
    if decrypt(key, parts[2]) != "pulumi":
        raise StackConfigError("the passphrase does not match this stack")
    return key


def new_salt_line(passphrase: str) -> str:
    salt = os.urandom(SALT_BYTES)
    return f"v1:{base64.b64encode(salt).decode()}:{encrypt(derive_key(passphrase, salt), 'pulumi')}"


def _is_secret(value: object) -> bool:
    return isinstance(value, dict) and "secure" in value


def render_value(value: object) -> str:
    """A config value from the YAML file as the CLI would print it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def render(values: Mapping[str, tuple[str, bool]], passphrase: str, previous: str | None = None) -> str:
    """The file for `values` ({key: (value, is_secret)}), keeping the salt of `previous`
    (a stack keeps its salt for life) and the ciphertext of each secret whose value did
    not change, so an unchanged config renders to unchanged text."""
    old = _parse(previous) if previous else {}
    salt_line = old.get("encryptionsalt") or new_salt_line(passphrase)
    key = key_of(salt_line, passphrase)
    old_config = old.get("config") or {}
    config: dict[str, object] = {}
    for name, (value, secret) in sorted(values.items()):
        if not secret:
            config[name] = value
            continue
        before = old_config.get(name)
        if _is_secret(before) and decrypt(key, before["secure"]) == value:
            config[name] = before
        else:
            config[name] = {"secure": encrypt(key, value)}
    return yaml.safe_dump({"encryptionsalt": salt_line, "config": config}, sort_keys=True, width=1 << 20)


def read(text: str | None, passphrase: str) -> dict[str, str] | None:
    """Every value of the file, secrets decrypted; None for no file."""
    if not text:
        return None
    doc = _parse(text)
    key = key_of(doc.get("encryptionsalt", ""), passphrase)
    return {
        name: decrypt(key, value["secure"]) if _is_secret(value) else render_value(value)
        for name, value in (doc.get("config") or {}).items()
    }


def read_value(text: str | None, passphrase: str, name: str) -> str | None:
    """One value of the file (a secret decrypted), None when it has none: a reader of
    one key decrypts nothing else (the sealed kubeconfig is kilobytes)."""
    if not text:
        return None
    doc = _parse(text)
    value = (doc.get("config") or {}).get(name)
    if value is None:
        return None
    if not _is_secret(value):
        return render_value(value)
    return decrypt(key_of(doc.get("encryptionsalt", ""), passphrase), value["secure"])


def read_plain(text: str | None, keys: tuple[str, ...]) -> dict[str, str]:
    """Only the named plain (non-secret) values: no key derivation, for readers of many
    stacks at once (the auto-update poll)."""
    if not text:
        return {}
    config = _parse(text).get("config") or {}
    return {k: render_value(config[k]) for k in keys if config.get(k) is not None and not _is_secret(config[k])}
