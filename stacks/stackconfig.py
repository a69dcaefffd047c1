"""Reads a stack's current config straight from its `Pulumi.<stack>.yaml`.

`GET /api/deployments/config` must answer without starting a pulumi process
(each one spends ~0.5 s deriving the passphrase key). The file is the one the
Automation API writes; secrets in it use Pulumi's passphrase scheme: AES-256-GCM
values `v1:<nonce>:<ciphertext>` under a key derived by PBKDF2-SHA256
(1,000,000 rounds) from the passphrase and the file's `encryptionsalt`. The
derived key is cached per salt, so only the first read of a stack pays for it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stacks.settings import Settings


class StackConfigError(RuntimeError):
    pass


@functools.lru_cache(maxsize=4096)
def _key(passphrase: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, 1_000_000, 32)


def _decrypt(key: bytes, value: str) -> str:
    version, nonce, ciphertext = value.split(":")
    if version != "v1":
        raise StackConfigError(f"unknown secret version {version!r}")
    return AESGCM(key).decrypt(base64.b64decode(nonce), base64.b64decode(ciphertext), None).decode()


def read(settings: Settings, name: str) -> dict[str, str] | None:
    """The stack's config with secrets decrypted, or None if it has none yet."""
    path = Path(settings.engine.stacks_dir) / f"Pulumi.{name}.yaml"
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return None
    salt_state = doc.get("encryptionsalt", "")
    parts = salt_state.split(":", 2)
    if len(parts) != 3 or parts[0] != "v1":
        raise StackConfigError(f"{path} has no passphrase salt")
    key = _key(settings.engine.passphrase, base64.b64decode(parts[1]))
    try:
        if _decrypt(key, parts[2]) != "pulumi":
            raise StackConfigError("the passphrase does not match this stack")
    except Exception as exc:
        raise StackConfigError("the passphrase does not match this stack") from exc
    out: dict[str, str] = {}
    for k, v in (doc.get("config") or {}).items():
        out[k] = _decrypt(key, v["secure"]) if _is_secret(v) else render(v)
    return out


def _is_secret(value: object) -> bool:
    return isinstance(value, dict) and "secure" in value


def render(value: object) -> str:
    """A config value from the YAML file as the CLI would print it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def read_plain(path: Path, keys: tuple[str, ...], loader: type = yaml.SafeLoader) -> dict[str, str]:
    """Only the named plain (non-secret) keys of a stack config file: no key
    derivation, for readers of many stacks at once (the auto-update poll)."""
    config = (yaml.load(path.read_text(), Loader=loader) or {}).get("config") or {}
    return {k: render(config[k]) for k in keys if config.get(k) is not None and not _is_secret(config[k])}
