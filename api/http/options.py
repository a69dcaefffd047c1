"""`OPTIONS` answers with every method of the path.

Litestar makes one OPTIONS handler per route when the route is first registered;
when a second handler for the same path is registered later (GET and PUT of
/api/deployments/config live in two functions), the route is rebuilt but keeps
the first OPTIONS handler, whose `Allow` still lists the first handler's methods
only. This hook answers OPTIONS from the app's merged map of the path instead.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.routes import HTTPRoute
from litestar.status_codes import HTTP_204_NO_CONTENT


async def answer_options(request: Request[Any, Any, Any]) -> Response[None] | None:
    """App-level `before_request`: the OPTIONS answer, or None for every other method."""
    if request.method != "OPTIONS":
        return None
    template = request.scope.get("path_template", "")
    methods: set[str] = set()
    for route in request.app.routes:  # the template has no converters ({name}); the map's keys do ({name:str})
        if isinstance(route, HTTPRoute) and route.path_format == template:
            methods |= set(route.methods)
    if not methods:
        return None
    return Response(None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": ", ".join(sorted(methods))})
