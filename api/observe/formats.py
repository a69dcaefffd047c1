"""The formats Kubernetes uses: RFC 3339 timestamps with up to nanosecond precision
(`parse_time_ns`, `format_time_ns`) and resource quantities (`parse_quantity`,
`format_cpu`, `format_memory`). Pure functions."""

from __future__ import annotations

import calendar
import functools
import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})")


@functools.lru_cache(maxsize=4096)
def _epoch_of(day: str, hh: str, mm: str, ss: str, tz: str) -> int:
    year, month, dom = (int(x) for x in day.split("-"))
    seconds = calendar.timegm((year, month, dom, int(hh), int(mm), int(ss), 0, 0, 0))
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        seconds -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return seconds


def parse_time_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time (any fraction up to 9 digits), or None."""
    m = _TIME.fullmatch(text)
    if m is None:
        return None
    day, hh, mm, ss, frac, tz = m.groups()
    try:
        seconds = _epoch_of(day, hh, mm, ss, tz)
    except ValueError:
        return None
    return seconds * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)


@functools.lru_cache(maxsize=8192)  # every stream of a service formats the same times
def format_time_ns(ns: int, *, fraction: bool = True) -> str:
    """RFC 3339 in UTC with exactly nine fraction digits (or none: whole seconds, floored)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{rest:09d}Z" if fraction else f"{base}Z"


_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)")
_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes resource quantity ("15m", "1234567n", "32Mi", "1.5", "1e3") in base units."""
    m = _QUANTITY.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    number, exponent, suffix = m.groups()
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from None
    if exponent:
        return value * (Decimal(10) ** int(exponent[1:]))
    return value * _SUFFIX[suffix or ""]


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_cpu(cores: Decimal) -> str:
    """CPU in whole millicores, as the spec shows it: "150m"."""
    return f"{_round(cores * 1000)}m"


def format_memory(size: Decimal) -> str:
    """Memory in whole mebibytes ("256Mi", "0Mi"); below 1 MiB in kibibytes ("512Ki")."""
    if 0 < size < 2**20:
        return f"{_round(size / 1024)}Ki"
    return f"{_round(size / 2**20)}Mi"
