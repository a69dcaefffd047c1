"""JSON request bodies, and optional query numbers, are read strictly, as documented.

Litestar converts a handler's `data` in lax mode (it coerces `0` to `false` and
`"5"` to `5`), which lets a body the OpenAPI document calls invalid through. This
check decodes the raw body once more with msgspec in strict mode, before the
handler runs, and answers 400 naming the field when it does not fit; a body that
passes decodes to the same value in Litestar's lax mode, so the handler is
unchanged. A number with a zero fraction (`5.0`) is an integer to JSON Schema,
and so to this check too.

The same lax mode reads the text `null` in a query string as "not given" for an
optional number (`?user_id=null` listed every user's keys); the document says the
parameter is an integer, so that text is a 400 too.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.params import BodyKwarg, ParameterKwarg

from api.errors import Invalid

_types: dict[HTTPRouteHandler, Any] = {}
_null_refusing: dict[HTTPRouteHandler, frozenset[str]] = {}
_NO_BODY = object()


def _body_type(handler: HTTPRouteHandler) -> Any:
    if handler not in _types:
        field = handler.parsed_fn_signature.parameters.get("data")
        is_json = (
            field is not None
            and isinstance(field.kwarg_definition, BodyKwarg)
            and field.kwarg_definition.media_type == RequestEncodingType.JSON
        )
        _types[handler] = field.annotation if is_json and field is not None else _NO_BODY
    return _types[handler]


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


async def check_json_body(request: Request[Any, Any, Any]) -> None:
    """Raises Invalid (400) for a JSON body that only lax conversion would accept."""
    handler = request.route_handler
    if not isinstance(handler, HTTPRouteHandler):
        return
    body_type = _body_type(handler)
    if body_type is _NO_BODY:
        return
    raw = await request.body()
    if not raw:
        return  # Litestar reports the missing body itself
    try:
        msgspec.convert(_integral(msgspec.json.decode(raw)), body_type, strict=True)
    except msgspec.ValidationError as exc:
        raise Invalid(f"Invalid request body: {exc}", "bad_request") from None
    except msgspec.DecodeError:
        raise Invalid("Request body must be JSON", "bad_request") from None


def _optional_non_text_queries(handler: HTTPRouteHandler) -> frozenset[str]:
    """Query keys of optional parameters that are not text (where lax mode reads `null` as None)."""
    if handler not in _null_refusing:
        keys = set()
        for name, field in handler.parsed_fn_signature.parameters.items():
            kwarg = field.kwarg_definition
            if isinstance(kwarg, ParameterKwarg) and (kwarg.header or kwarg.cookie):
                continue
            if field.is_optional and not any(inner.annotation is str for inner in field.inner_types):
                keys.add(kwarg.query if isinstance(kwarg, ParameterKwarg) and kwarg.query else name)
        _null_refusing[handler] = frozenset(keys)
    return _null_refusing[handler]


def check_query(request: Request[Any, Any, Any]) -> None:
    """Raises Invalid (400) for `null` given to an optional query parameter that is not text."""
    handler = request.route_handler
    if not isinstance(handler, HTTPRouteHandler):
        return
    for key in _optional_non_text_queries(handler):
        if "null" in request.query_params.getall(key, []):
            raise Invalid(f"Invalid request: {key}: null is not one of its values", "bad_request")
