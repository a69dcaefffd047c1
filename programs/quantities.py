"""Kubernetes resource quantities, in the few forms shipstack accepts, as numbers.

Only plain forms: CPU as `250m` or `1`/`1.5` cores, memory and storage as a whole
number of `Ki`/`Mi`/`Gi`/`Ti`. That is every size an operator needs, and keeps sums
and comparisons (does a deployment fit its quota?) exact integers.
"""

from __future__ import annotations

import re

_CPU = re.compile(r"(?P<milli>[1-9][0-9]{0,6})m|(?P<cores>[0-9]{1,4})(?:\.(?P<fraction>[0-9]{1,3}))?")
_BYTES = re.compile(r"(?P<count>[1-9][0-9]{0,6})(?P<unit>Ki|Mi|Gi|Ti)")
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def cpu_millis(quantity: object) -> int | None:
    """`250m` -> 250, `1.5` -> 1500; None for anything else, zero included."""
    match = _CPU.fullmatch(quantity) if isinstance(quantity, str) else None
    if match is None:
        return None
    if match["milli"]:
        return int(match["milli"])
    millis = int(match["cores"]) * 1000 + int((match["fraction"] or "0").ljust(3, "0"))
    return millis or None


def byte_count(quantity: object) -> int | None:
    """`512Mi` -> 536870912; None for anything else."""
    match = _BYTES.fullmatch(quantity) if isinstance(quantity, str) else None
    return None if match is None else int(match["count"]) * _UNITS[match["unit"]]


def show_cpu(millis: int) -> str:
    """1500 -> "1.5", 250 -> "250m": how a message names a CPU amount."""
    return f"{millis}m" if millis % 100 else f"{millis / 1000:g}"


def show_bytes(count: int) -> str:
    """The largest unit that keeps one decimal exact enough for a message: "1.5Gi"."""
    for unit in ("Ti", "Gi", "Mi"):
        if count >= _UNITS[unit]:
            return f"{count / _UNITS[unit]:.3g}{unit}"
    return f"{count / _UNITS['Ki']:.3g}Ki"
