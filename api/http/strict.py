"""JSON request bodies are decoded strictly, as their Struct says.

Litestar converts a handler's `data` in lax mode (it coerces `0` to `false` and
`"5"` to `5`), which lets a body the OpenAPI document calls invalid through. This
check decodes the raw body once more with msgspec in strict mode, before the
handler runs, and answers 400 naming the field when it does not fit; a body that
passes decodes to the same value in Litestar's lax mode, so the handler is
unchanged.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.params import BodyKwarg

from api.errors import Invalid

_decoders: dict[HTTPRouteHandler, msgspec.json.Decoder[Any] | None] = {}


def _decoder_of(handler: HTTPRouteHandler) -> msgspec.json.Decoder[Any] | None:
    if handler not in _decoders:
        field = handler.parsed_fn_signature.parameters.get("data")
        is_json = (
            field is not None
            and isinstance(field.kwarg_definition, BodyKwarg)
            and field.kwarg_definition.media_type == RequestEncodingType.JSON
        )
        _decoders[handler] = msgspec.json.Decoder(field.annotation) if is_json and field is not None else None
    return _decoders[handler]


async def check_json_body(request: Request[Any, Any, Any]) -> None:
    """Raises Invalid (400) for a JSON body that only lax conversion would accept."""
    handler = request.route_handler
    if not isinstance(handler, HTTPRouteHandler):
        return
    decoder = _decoder_of(handler)
    if decoder is None:
        return
    raw = await request.body()
    if not raw:
        return  # Litestar reports the missing body itself
    try:
        decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise Invalid(f"Invalid request body: {exc}", "bad_request") from None
    except msgspec.DecodeError:
        raise Invalid("Request body must be JSON", "bad_request") from None
