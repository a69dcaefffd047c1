"""One error type and one error shape: `{"error": "...", "code": "..."}`.

Every exception that reaches Litestar (our `ApiError`, Litestar's validation,
404/405 from the router, database failures, bugs) is turned into that shape here.
Messages of 5xx errors are generic: driver and stack details go to the log only,
and even there without bound SQL parameters (see `persistence.db.make_engine`).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

log = logging.getLogger("shipstack.api.errors")

# Default machine-readable code per status, used when the raiser did not choose one.
STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "bad_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ErrorBody(msgspec.Struct):
    error: str
    code: str


class ApiError(HTTPException):
    """Raise anywhere (handlers, guards, dependencies, middleware) to answer with an error.

    `message` is shown to the client as is, so it must never contain secrets.
    """

    def __init__(
        self,
        status: int,
        code: str | None = None,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code or STATUS_CODES.get(status, "error")
        super().__init__(detail=message or HTTPStatus(status).phrase, status_code=status, headers=headers)


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI `responses=` entries documenting error statuses with the error body."""
    return {
        status: ResponseSpec(ErrorBody, description=HTTPStatus(status).phrase, generate_examples=False)
        for status in statuses
    }


# What every authenticated route can answer besides its own errors (400 also
# replaces the shape Litestar would document for its validation errors).
AUTH_ERRORS = error_responses(400, 401, 403, 429)


def not_found(what: str = "Not found") -> ApiError:
    return ApiError(404, "not_found", what)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response[ErrorBody]:
    return Response(
        ErrorBody(error=message, code=code),
        status_code=status,
        headers=headers,
        media_type=MediaType.JSON,
    )


def _validation_message(exc: ValidationException) -> str:
    """Name the offending fields; deliberately not the URL (Litestar puts the query in it)."""
    problems = []
    if isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict) and item.get("message"):
                key = item.get("key")
                problems.append(f"{key}: {item['message']}" if key else str(item["message"]))
    if not problems:
        # Litestar's body decoding errors carry a decoder message without values.
        detail = exc.detail if not exc.detail.startswith("Validation failed for") else ""
        return f"Invalid request{': ' + detail if detail else ''}"
    return "Invalid request: " + "; ".join(problems)


def classify(exc: Exception) -> tuple[int, str, str, dict[str, str] | None]:
    """(status, code, client message, headers) for any exception."""
    if isinstance(exc, ApiError):
        return exc.status_code, exc.code, exc.detail, exc.headers
    if isinstance(exc, ValidationException):
        return 400, "bad_request", _validation_message(exc), exc.headers
    if isinstance(exc, HTTPException):
        status = exc.status_code
        code = STATUS_CODES.get(status, "error")
        if status >= 500:
            return status, code, HTTPStatus(status).phrase, None
        return status, code, exc.detail or HTTPStatus(status).phrase, exc.headers
    if isinstance(exc, IntegrityError):
        # Normally handlers check first; this is the race where two requests collide.
        return 409, "conflict", "Conflicting change: the resource already exists or is in use", None
    if isinstance(exc, OperationalError):
        return 503, "database_unavailable", "Database unavailable, retry later", None
    if isinstance(exc, SQLAlchemyError):
        return 500, "database_error", "Database error", None
    return 500, "internal_error", "Internal server error", None


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    status, code, message, headers = classify(exc)
    if isinstance(exc, ApiError) and status >= 500:
        # An answer we chose (the cluster's metrics API is absent, say): a line, no traceback.
        log.warning("%s %s answered %s %s: %s", request.method, request.url.path, status, code, message)
    elif status >= 500:
        log.error(
            "%s %s failed with %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            exc_info=exc,
        )
    return error_response(status, code, message, headers)


# Keyed by the base classes: Litestar walks the exception's MRO to pick a handler,
# so this covers every subclass, router 404/405 included.
EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: handle_exception,
    Exception: handle_exception,
}
