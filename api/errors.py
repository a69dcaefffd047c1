"""Domain errors: what a service function reports, knowing nothing of HTTP.

Each kind has a stable default `code` (a machine-readable word clients can branch
on); a raiser may choose a more precise one (`name_taken`, `tier_limit`). The
message is shown to the user as is, so it never carries secrets or an exception's
text from a lower layer. `api.http.errors` maps the kinds to HTTP statuses and the
CLI maps them to exit codes.
"""

from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    default_code: ClassVar[str] = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class Invalid(ServiceError):
    """The caller's input is wrong; nothing was changed."""

    default_code = "invalid_input"


class Unauthorized(ServiceError):
    """No credential, or one that is not (or no longer) valid."""

    default_code = "unauthorized"


class Forbidden(ServiceError):
    """A valid credential without the right to do this (scope, team, tier)."""

    default_code = "forbidden"


class NotFound(ServiceError):
    """Does not exist, or is not visible to the caller (the two look the same)."""

    default_code = "not_found"


class Conflict(ServiceError):
    """The request clashes with the current state (a name taken, a delete under way)."""

    default_code = "conflict"


class RateLimited(ServiceError):
    """Too many requests; `retry_after_s` says when to try again."""

    default_code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float, code: str | None = None) -> None:
        super().__init__(message, code)
        self.retry_after_s = retry_after_s


class Internal(ServiceError):
    """A server-side failure the caller cannot fix (unreadable stored data, a refused cluster call)."""

    default_code = "internal_error"


class Unavailable(ServiceError):
    """A part shipstack depends on (the engine, the cluster, the database) cannot be reached now."""

    default_code = "unavailable"


# Exit statuses of the `shipstack` command line, per kind (usage errors are 2 too).
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4


def exit_code(error: ServiceError) -> int:
    if isinstance(error, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(error, Unauthorized | Forbidden):
        return EXIT_AUTH
    if isinstance(error, Invalid):
        return EXIT_USAGE
    return EXIT_FAILED
