"""Env values inside queued operations, sealed.

A write's payload (a create's spec, a config change) waits in the database until a
worker runs it; its env values are encrypted there like every other secret, with a
key derived from the service's passphrase (AES-256-GCM, the stack config's scheme),
and opened only by the worker that applies them or a reader that shows them to
their owner.
"""

from __future__ import annotations

from typing import Any

import msgspec

from stacks import stackconfig

SEALED = "shipstack:sealed"  # not a valid env var name, so a sealed env can never pass as a real one
_SALT = b"shipstack-operation-payloads"


def _key(passphrase: str) -> bytes:
    return stackconfig.derive_key(passphrase, _SALT)


def seal_env(env: dict[str, str], passphrase: str) -> dict[str, str]:
    return {SEALED: stackconfig.encrypt(_key(passphrase), msgspec.json.encode(env).decode())}


def open_env(env: dict[str, str], passphrase: str) -> dict[str, str]:
    if SEALED not in env:
        return env  # queued before payloads were sealed
    return msgspec.json.decode(stackconfig.decrypt(_key(passphrase), env[SEALED]), type=dict[str, str])


def seal(payload: dict[str, Any], passphrase: str) -> dict[str, Any]:
    """`payload` with the env of its `spec` or `change` sealed."""
    return _map_env(payload, lambda env: seal_env(env, passphrase))


def unseal(payload: dict[str, Any], passphrase: str) -> dict[str, Any]:
    return _map_env(payload, lambda env: open_env(env, passphrase))


def _map_env(payload: dict[str, Any], convert: Any) -> dict[str, Any]:
    out = dict(payload)
    for part in ("spec", "change"):
        body = out.get(part)
        if isinstance(body, dict) and isinstance(body.get("env"), dict):
            out[part] = {**body, "env": convert(body["env"])}
    return out
