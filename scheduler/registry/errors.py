"""Registry failures, as exceptions whose messages are safe to store and show.

A message may carry what a registry said (its error text, a host it named), and it
ends up in the decision the status API returns, the page, and the logs of a
service every tenant shares. So every message is cleaned where it is made: control
and formatting characters (newlines that forge log lines, terminal escapes, bidi
overrides that reorder what a reader sees) become spaces, and it is cut to a
length a status line can hold. Markup is left as text: the API answers JSON and
the page sets it with `textContent`.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

MAX_MESSAGE_LENGTH = 500
MAX_DETAIL_LENGTH = 200  # what a registry's own error text may add to a message
# Categories that never belong in a one-line status: controls, format characters
# (bidi overrides, zero-width joiners), unassigned, surrogates, private use, and
# line/paragraph separators.
_DROPPED = frozenset({"Cc", "Cf", "Cn", "Cs", "Co", "Zl", "Zp"})


def clean_text(text: object, limit: int = MAX_MESSAGE_LENGTH) -> str:
    """`text` on one line, without control or formatting characters, at most `limit`
    characters (an ellipsis marks a cut)."""
    raw = str(text)
    # Bound the work before looking at characters: a registry may send megabytes.
    raw = raw[: limit * 4]
    cleaned = "".join(" " if unicodedata.category(c) in _DROPPED else c for c in raw)
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: max(0, limit - 1)].rstrip() + "…"
    return cleaned


class RegistryError(RuntimeError):
    """A registry request that failed; the message is clean and holds no credentials."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(clean_text(message))
        self.status = status


class NotFound(RegistryError):
    pass


class Unauthorized(RegistryError):
    pass


class Refused(RegistryError):
    """Something a registry asked for that the client will not do: connect to a
    private address, follow a redirect or a page link to another host, fetch a
    token from a realm it is not configured to trust."""


class TimedOut(RegistryError):
    """A request, or a registry's share of a poll, ran past its overall deadline."""


class TooLarge(RegistryError):
    """A body longer than the cap for its kind."""


# Longer than any real registry asks; a bigger Retry-After (or an HTTP date years
# ahead) is a registry trying to overflow our date arithmetic or park us for ever.
MAX_RETRY_AFTER_S = 24 * 3600.0


class RateLimited(RegistryError):
    """429 that outlasted our retries or asked for more than `max_retry_wait_s`.

    `retry_after_s` is capped at a day; `retry_at` (UTC) tells the scheduler when to
    ask this registry again.
    """

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message, status=429)
        self.retry_after_s = min(max(0.0, retry_after_s), MAX_RETRY_AFTER_S)
        self.retry_at = datetime.now(UTC).timestamp() + self.retry_after_s
