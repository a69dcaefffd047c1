"""Auto-update tag filters (`include`/`exclude`): one compiler for the API's check and the poll.

Patterns come from tenants and are matched against tags that come from registries,
inside the API process. Python's `re` backtracks: `^(a+)+$` against a few dozen
`a`s holds the GIL for seconds (a 128-character tag: for ever), freezing every
request, worker and poll of every tenant. RE2 matches in time linear in the tag,
refuses the constructs that need backtracking (look-around, back-references), and
`max_mem` bounds what a pattern may compile to, so a filter costs microseconds
whatever a tenant writes.
"""

from __future__ import annotations

from typing import Protocol

import re2

MAX_PATTERN_LENGTH = 256
# RE2 refuses a pattern whose compiled program needs more than this; a tag filter
# of 256 characters needs a few KiB unless it stacks counted repetitions.
MAX_PROGRAM_BYTES = 256 * 1024


class TagFilter(Protocol):
    def search(self, text: str) -> object | None: ...


class FilterError(ValueError):
    """A pattern RE2 will not run; the message is for the tenant who wrote it."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    options.max_mem = MAX_PROGRAM_BYTES
    return options


_OPTIONS = _options()


def compile_filter(pattern: str) -> TagFilter:
    """The compiled filter; raises FilterError for a pattern that is too long, invalid,
    uses look-around or back-references, or compiles too large."""
    if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN_LENGTH:
        raise FilterError(f"must be a regex of at most {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise FilterError(f"is not a valid regex (RE2 syntax: no look-around or back-references): {detail}") from None
