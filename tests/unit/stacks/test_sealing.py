"""stacks.sealing: env values inside queued operations are sealed (AES-256-GCM under a
key derived from the service's passphrase). They open again only with that
passphrase and untouched ciphertext; anything else fails with a clear error that
carries no value, and an env that merely looks sealed is never taken for one."""

from __future__ import annotations

import base64

import msgspec
import pytest

from stacks.sealing import SEALED, open_env, seal, seal_env, unseal
from stacks.stackconfig import StackConfigError

PASSPHRASE = "the service's passphrase"
ENV = {"API_TOKEN": "tok-3f9a1c7e", "DATABASE_URL": "postgres://app:pw-71d2@db/app", "EMPTY": "", "UTF": "ünï ✓"}
PLAINTEXTS = [v for v in ENV.values() if v]


def _shown(value: object) -> str:
    return msgspec.json.encode(value).decode()


def test_a_sealed_env_round_trips_and_shows_nothing() -> None:
    sealed = seal_env(ENV, PASSPHRASE)
    assert list(sealed) == [SEALED] and sealed[SEALED].startswith("v1:")
    for value in PLAINTEXTS:
        assert value not in _shown(sealed)
    for name in ENV:  # not even the names
        assert name not in _shown(sealed)
    assert open_env(sealed, PASSPHRASE) == ENV
    assert seal_env(ENV, PASSPHRASE) != sealed  # a fresh nonce every time


def test_payloads_seal_the_env_of_a_spec_and_of_a_change_only() -> None:
    payload = {
        "spec": {"name": "shop", "template": "nginx", "env": ENV},
        "change": {"env": ENV, "image": "nginx:1.27"},
        "attempt": 2,
        "auto_update": {"to": "nginx:1.27"},
    }
    sealed = seal(payload, PASSPHRASE)
    for value in PLAINTEXTS:
        assert value not in _shown(sealed)
    assert sealed["spec"]["template"] == "nginx" and sealed["change"]["image"] == "nginx:1.27"
    assert sealed["attempt"] == 2 and sealed["auto_update"] == {"to": "nginx:1.27"}
    assert unseal(sealed, PASSPHRASE) == payload
    assert payload["spec"]["env"] == ENV  # the caller's dict is left alone
    assert seal({"change": {"restart_stamp": "x"}}, PASSPHRASE) == {"change": {"restart_stamp": "x"}}


def _tampered(sealed: str, part: int, flip_at: int = 0) -> str:
    pieces = sealed.split(":")
    raw = bytearray(base64.b64decode(pieces[part]))
    raw[flip_at] ^= 0x01
    pieces[part] = base64.b64encode(bytes(raw)).decode()
    return ":".join(pieces)


def test_another_passphrase_or_a_tampered_value_fails_clearly_and_never_yields_plaintext() -> None:
    sealed = seal_env(ENV, PASSPHRASE)[SEALED]
    other = seal_env({"API_TOKEN": "someone-elses"}, PASSPHRASE)[SEALED]
    nonce, ciphertext = sealed.split(":")[1:]
    bad = {
        "another passphrase": (sealed, "another passphrase"),
        "a flipped ciphertext bit": (_tampered(sealed, 2, 3), PASSPHRASE),
        "a flipped tag bit": (_tampered(sealed, 2, -1), PASSPHRASE),
        "a flipped nonce bit": (_tampered(sealed, 1), PASSPHRASE),
        "a truncated ciphertext": (f"v1:{nonce}:{ciphertext[:-8]}", PASSPHRASE),
        "another value's nonce": (f"v1:{other.split(':')[1]}:{ciphertext}", PASSPHRASE),
        "no version": (f"{nonce}:{ciphertext}", PASSPHRASE),
        "not base64": ("v1:!!!!:????", PASSPHRASE),
        "empty": ("", PASSPHRASE),
    }
    for case, (value, passphrase) in bad.items():
        with pytest.raises(StackConfigError) as caught:
            open_env({SEALED: value}, passphrase)
        message = str(caught.value)
        assert "cannot be decrypted" in message, case
        for plaintext in PLAINTEXTS:
            assert plaintext not in message, case
        assert caught.value.__cause__ is None and caught.value.__suppress_context__, case
    with pytest.raises(StackConfigError, match="unknown secret version 'v2'"):
        open_env({SEALED: "v2" + sealed[2:]}, PASSPHRASE)


def test_an_env_that_only_looks_sealed_is_not_taken_for_one() -> None:
    """The marker is not a valid env var name, so the API refuses it in a request
    (tests/unit/deployments/test_sealed_payloads.py); and should an env holding it
    ever reach the sealing, it is sealed whole like any other and comes back as it
    was: never decrypted, never confused with the service's own seal."""
    forged = {SEALED: seal_env({"API_TOKEN": "planted"}, PASSPHRASE)[SEALED], "OTHER": "x"}
    sealed = seal_env(forged, PASSPHRASE)
    assert list(sealed) == [SEALED] and sealed[SEALED] != forged[SEALED]
    assert open_env(sealed, PASSPHRASE) == forged
    assert unseal(seal({"change": {"env": forged}}, PASSPHRASE), PASSPHRASE) == {"change": {"env": forged}}
