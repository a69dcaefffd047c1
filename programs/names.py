"""Deployment names: the DNS-1123 rule they follow and how fresh ones are drawn."""

from __future__ import annotations

import random
import re
import secrets
import string

from programs.quoting import show

# Deployment names go into the namespace `sd-<name>` and into ingress host labels
# `<service>-<name>`; 40 leaves room for a 22-character service name in a 63-char label.
MAX_NAME_LENGTH = 40
GENERATED_NAME_LENGTH = 10

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NAME_ALPHABET = string.ascii_lowercase + string.digits


def validate_name(name: object) -> str | None:
    """Deployment names: DNS-1123 labels of at most 40 characters."""
    if not isinstance(name, str) or not name:
        return "name must be a non-empty string"
    if len(name) > MAX_NAME_LENGTH:
        return f"name must be at most {MAX_NAME_LENGTH} characters"
    if not DNS1123_LABEL.fullmatch(name):
        return (
            f"name {show(name)} must consist of lowercase letters, digits and '-', "
            "and start and end with a letter or digit"
        )
    return None


def generate_name(rng: random.Random | None = None) -> str:
    """A fresh deployment name: 10 characters of [a-z0-9], starting with a letter.

    The letter first keeps it a valid DNS-1035 label too (usable as a Service name).
    Pass a seeded `random.Random` in tests; the default is the OS CSPRNG.
    """
    rng = rng or secrets.SystemRandom()
    first = rng.choice(string.ascii_lowercase)
    rest = "".join(rng.choice(_NAME_ALPHABET) for _ in range(GENERATED_NAME_LENGTH - 1))
    return first + rest
