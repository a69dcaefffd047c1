"""The OpenAPI document told the truth, in one place, after Litestar generated it.

Routes declare what is theirs (a 404 of a lookup, a 409, a 503 of the cluster);
what every route of a kind can answer is added here, from the route handlers
themselves, so no route can forget it:

* every error status has the one error body, `{"error", "code"}` (this replaces
  the `detail`/`status_code` shape Litestar documents for its validation 400);
* a route that needs credentials can answer 401 (with `WWW-Authenticate`), 403
  (scope, team, CSRF) and 429 (with `Retry-After`), and 400 when it takes input;
* a route with path parameters can answer 404 (nothing there, or a value the
  router's converter refuses);
* every 401 carries `WWW-Authenticate` and every 429 `Retry-After`, as
  `api.http.errors.headers_of` sends them; a response header a route documents
  without a schema (Litestar's `ResponseHeader` takes none) is a string;
* a 204 has no body;
* an optional parameter is documented as optional (`required: false`), not as
  nullable: a query string or a header cannot carry a JSON null, and a client
  told it may send one sends the text "null";
* the schemas of our msgspec Structs are msgspec's own JSON Schema of them, the
  one the decoder enforces (Litestar's drops `additionalProperties: false` of a
  Struct that forbids unknown fields, and the constraints on dict keys);
* a handler may add media types to a response through its `opt`
  (`EXTRA_CONTENT`: status -> {media type: schema}), for a route whose answer
  depends on a parameter (logs: JSON, or text/plain with `follow=true`);
* a handler that reads its body itself documents it through `opt` (`BODY`: media
  type -> the msgspec Struct it decodes).
"""

from __future__ import annotations

import dataclasses
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)
from litestar.routes import HTTPRoute

from api.auth.middleware import PUBLIC
from api.http.errors import ErrorBody

# Handler opt keys read here.
EXTRA_CONTENT = "openapi_extra_content"
BODY = "openapi_body"

ERROR_REF = Reference(ref="#/components/schemas/ErrorBody")
COMPONENTS_REF = "#/components/schemas/{name}"

ERROR_HEADERS: dict[int, dict[str, OpenAPIHeader]] = {
    401: {
        "WWW-Authenticate": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.STRING), required=True, description="The scheme to authenticate with"
        )
    },
    429: {
        "Retry-After": OpenAPIHeader(
            schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
            required=True,
            description="Whole seconds to wait before trying again",
        )
    },
}


_FINISHED = "openapi_document_finished"


def finished_document(app: Litestar) -> OpenAPI:
    """The app's document with the rules applied, made when first asked for: building
    it costs about as much as building the app, and most apps (every test's) never
    serve it."""
    if not app.state.get(_FINISHED):
        finish_document(app)
        app.state[_FINISHED] = True
    return app.openapi_schema


def finish_document(app: Litestar) -> OpenAPI:
    """Applies the rules of the module doc to the app's (cached) document and returns it."""
    document = app.openapi_schema
    components = document.components
    schemas: dict[str, Any] = dict(components.schemas or {})
    _add_struct_schema(schemas, ErrorBody)
    _use_msgspec_schemas(schemas)
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        item = (document.paths or {}).get(route.path_format)
        if item is None:
            continue
        for method, (handler, _) in route.route_handler_map.items():
            operation = getattr(item, method.lower(), None)
            if isinstance(operation, Operation):
                _finish_operation(operation, handler, bool(route.path_parameters), schemas)
    components.schemas = schemas
    return document


def _finish_operation(
    operation: Operation, handler: HTTPRouteHandler, has_path_params: bool, schemas: dict[str, Any]
) -> None:
    body: dict[str, type[msgspec.Struct]] = handler.opt.get(BODY, {})
    if body:
        content = {media: _add_struct_schema(schemas, struct) for media, struct in body.items()}
        operation.request_body = RequestBody(
            required=True, content={media: OpenAPIMediaType(schema=ref) for media, ref in content.items()}
        )
    for parameter in operation.parameters or []:
        if isinstance(parameter, Parameter) and isinstance(parameter.schema, Schema):
            parameter.schema = _without_null(parameter.schema)
    responses: dict[str, Any] = dict(operation.responses or {})
    wanted: set[int] = set()
    if not handler.opt.get(PUBLIC):
        wanted |= {401, 403, 429}
        if operation.parameters or operation.request_body:
            wanted.add(400)
    if has_path_params:
        wanted.add(404)
    for status in sorted(wanted):
        responses.setdefault(str(status), OpenAPIResponse(description=HTTPStatus(status).phrase))
    for key, response in responses.items():
        if not isinstance(response, OpenAPIResponse):
            continue
        status = int(key)
        if status >= 400:
            response.content = {"application/json": OpenAPIMediaType(schema=ERROR_REF)}
            if status in ERROR_HEADERS:
                response.headers = {**(response.headers or {}), **ERROR_HEADERS[status]}
        elif status == 204:
            response.content = None
        for header in (response.headers or {}).values():
            if isinstance(header, OpenAPIHeader) and header.schema is None:
                header.schema = Schema(type=OpenAPIType.STRING)
        for media, schema in handler.opt.get(EXTRA_CONTENT, {}).get(status, {}).items():
            response.content = {**(response.content or {}), media: OpenAPIMediaType(schema=schema)}
    operation.responses = dict(sorted(responses.items()))


def _without_null(schema: Schema) -> Schema:
    """`oneOf: [X, null]` (Litestar's `T | None`) as X, keeping the keywords beside it."""
    options = [o for o in schema.one_of or [] if not (isinstance(o, Schema) and o.type == OpenAPIType.NULL)]
    if not schema.one_of or len(options) != 1 or not isinstance(options[0], Schema):
        return schema
    merged = {k: v for k, v in vars(schema).items() if v is not None and k != "one_of"}
    return dataclasses.replace(options[0], **merged)


def _add_struct_schema(schemas: dict[str, Any], struct: type[msgspec.Struct]) -> Reference:
    """msgspec's own JSON Schema of `struct` (and what it refers to), unless the document has it."""
    (ref,), definitions = msgspec.json.schema_components([struct], ref_template=COMPONENTS_REF)
    for name, schema in definitions.items():
        schemas.setdefault(name, schema)
    return Reference(ref=ref["$ref"])


def _api_structs(kind: type[msgspec.Struct] = msgspec.Struct) -> dict[str, type[msgspec.Struct]]:
    """Every Struct class of the service (modules under `api.`), by class name."""
    found: dict[str, type[msgspec.Struct]] = {}
    for sub in kind.__subclasses__():
        if sub.__module__.startswith("api."):
            found.setdefault(sub.__name__, sub)
        found.update({k: v for k, v in _api_structs(sub).items() if k not in found})
    return found


def _use_msgspec_schemas(schemas: dict[str, Any]) -> None:
    # Litestar names a component after its class; a name two classes share would be
    # qualified by Litestar and so is not matched here.
    structs = [struct for name, struct in sorted(_api_structs().items()) if name in schemas]
    _, definitions = msgspec.json.schema_components(structs, ref_template=COMPONENTS_REF)
    schemas.update(definitions)
