"""One error shape on the wire, `{"error": "...", "code": "..."}`, and the one place
where domain errors become HTTP statuses.

Every exception that reaches Litestar (a domain error from a service, Litestar's
validation, 404/405 from the router, database failures, bugs) is turned into that
shape here. Messages of 5xx errors the service did not choose are generic: driver
and stack details go to the log only, and even there without bound SQL parameters
(see `persistence.db.make_engine`).
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from api.errors import (
    Conflict,
    Forbidden,
    Internal,
    Invalid,
    NotFound,
    RateLimited,
    ServiceError,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger("shipstack.api.errors")

STATUS_OF: dict[type[ServiceError], int] = {
    Invalid: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    RateLimited: 429,
    Internal: 500,
    Unavailable: 503,
}

# The code of an error Litestar raised itself (router, validation), per status.
FRAMEWORK_CODES: dict[int, str] = {
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


def status_of(error: ServiceError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]  # type: ignore[index]
    return 500


def headers_of(error: ServiceError) -> dict[str, str] | None:
    if isinstance(error, Unauthorized):
        return {"WWW-Authenticate": 'Bearer realm="shipstack"'}
    if isinstance(error, RateLimited):
        return retry_after_header(error.retry_after_s)
    return None


def retry_after_header(wait_s: float) -> dict[str, str]:
    """Whole seconds, rounded up, at least 1 (HTTP Retry-After takes integers)."""
    return {"Retry-After": str(max(1, math.ceil(wait_s)))}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI `responses=` entries documenting error statuses with the error body."""
    return {
        status: ResponseSpec(ErrorBody, description=HTTPStatus(status).phrase, generate_examples=False)
        for status in statuses
    }


# What every authenticated route can answer besides its own errors (400 also
# replaces the shape Litestar would document for its validation errors).
AUTH_ERRORS = error_responses(400, 401, 403, 429)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response[ErrorBody]:
    return Response(ErrorBody(error=message, code=code), status_code=status, headers=headers, media_type=MediaType.JSON)


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
    if isinstance(exc, ServiceError):
        return status_of(exc), exc.code, exc.message, headers_of(exc)
    if isinstance(exc, ValidationException):
        return 400, "bad_request", _validation_message(exc), exc.headers
    if isinstance(exc, HTTPException):
        status = exc.status_code
        code = FRAMEWORK_CODES.get(status, "error")
        if status >= 500:
            return status, code, HTTPStatus(status).phrase, None
        return status, code, exc.detail or HTTPStatus(status).phrase, exc.headers
    if isinstance(exc, IntegrityError):
        # Normally services check first; this is the race where two requests collide.
        return 409, "conflict", "Conflicting change: the resource already exists or is in use", None
    if isinstance(exc, OperationalError):
        return 503, "database_unavailable", "Database unavailable, retry later", None
    if isinstance(exc, SQLAlchemyError):
        return 500, "database_error", "Database error", None
    return 500, "internal_error", "Internal server error", None


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    status, code, message, headers = classify(exc)
    if isinstance(exc, ServiceError) and status >= 500:
        # An answer we chose (the cluster's metrics API is absent, say): a line, no traceback.
        log.warning("%s %s answered %s %s: %s", request.method, request.url.path, status, code, message)
    elif status >= 500:
        log.error("%s %s failed with %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    return error_response(status, code, message, headers)


# Keyed by the base classes: Litestar walks the exception's MRO to pick a handler,
# so this covers every subclass, router 404/405 included.
EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: handle_exception,
    Exception: handle_exception,
}
