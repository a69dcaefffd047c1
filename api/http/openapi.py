"""The OpenAPI document's frame: title, security schemes, the docs UI at /api/docs."""

from __future__ import annotations

from typing import Any

from litestar import Response, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from api.auth.middleware import PUBLIC
from api.http.errors import error_response

DOCS_PATH = "/api/docs"
SCHEMA_PATH = "/api/openapi.json"


def _docs_404_as_json(response: Response[Any]) -> Response[Any]:
    """Litestar answers unknown paths under the docs router with an HTML page; keep one error shape."""
    if response.status_code == 404:
        return error_response(404, "not_found", "Not found")
    return response


def openapi_config(session_cookie: str) -> OpenAPIConfig:
    """`session_cookie`: the session cookie's name (`__Host-` prefixed with secure cookies)."""
    return OpenAPIConfig(
        title="shipstack",
        version="0.1.0",
        description=(
            "Deploy templates and container images onto Kubernetes. Authenticate with "
            "`Authorization: Bearer ssk_...` (API key) or the session cookie from "
            "`POST /api/auth/login` (writes then need the `X-CSRF-Token` header). "
            'Every error is `{"error": "...", "code": "..."}`.'
        ),
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="ssk_ API key",
                    description="API key: `Authorization: Bearer ssk_...`",
                ),
                "cookie": SecurityScheme(
                    type="apiKey",
                    name=session_cookie,
                    security_scheme_in="cookie",
                    description="Session cookie set by POST /api/auth/login",
                ),
            }
        ),
        security=[{"bearer": []}, {"cookie": []}],
        render_plugins=[SwaggerRenderPlugin(path="/")],
        openapi_router=Router(
            DOCS_PATH,
            route_handlers=[],
            include_in_schema=False,
            opt={PUBLIC: True},
            after_request=_docs_404_as_json,
        ),
    )
