"""The user commands' failures and the exit codes scripts can rely on.

    0 ok, 1 failed operation or server error, 2 usage (bad arguments, input the API
    refused as invalid), 3 not found, 4 auth (no login, key refused, not allowed).

An API error body is always `{"error": "...", "code": "..."}`; `ApiFailure` keeps
both, the HTTP status, and a hint saying what to do next.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4


class CliError(Exception):
    """A failure to report on stderr: the message, what to do next, and the exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint

    def lines(self) -> list[str]:
        out = [f"error: {self.message}"]
        if self.hint:
            out.append(f"hint: {self.hint}")
        return out


def exit_code_for_status(status: int) -> int:
    if status in (401, 403):
        return EXIT_AUTH
    if status == 404:
        return EXIT_NOT_FOUND
    if status in (400, 422):
        return EXIT_USAGE
    return EXIT_FAILED


# Hints by the API's machine-readable code first, then by status.
_CODE_HINTS = {
    "name_taken": "choose another name with --name, or leave it out to get a generated one",
    "deleting": "the deployment is being deleted; wait for `shipstack status NAME` to say it is gone",
    "not_created": "the deployment has not been created yet; wait with `shipstack status NAME --wait`",
    "rate_limited": "too many requests; wait a minute and try again",
    "tier_limit": "delete one (`shipstack rm NAME`), or ask an admin for a larger tier",
}
_STATUS_HINTS = {
    400: "check the arguments (`shipstack COMMAND --help`)",
    401: "the API key was refused; run `shipstack login URL` with a valid key",
    403: "this key may not do that (a missing scope, a team it is not bound to, or a tier limit); "
    "ask an admin for a key with deployments:read,deployments:write",
    404: "`shipstack ls` lists the deployments you can see",
    409: "another change is in the way; check `shipstack status NAME`",
    500: "the service failed; try again, and tell its operator if it persists",
    503: "the service's engine or cluster is unreachable; try again in a moment",
}


def hint_for(status: int, code: str) -> str | None:
    return _CODE_HINTS.get(code) or _STATUS_HINTS.get(status) or _STATUS_HINTS.get(status // 100 * 100)


class ApiFailure(CliError):
    """The API answered with an error status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({code}, HTTP {status})", exit_code_for_status(status), hint_for(status, code))
        self.status = status
        self.code = code
        self.api_message = message
