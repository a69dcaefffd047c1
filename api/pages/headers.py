"""The security headers of everything the pages send.

Every response of a page route (the page, its error page, a redirect to /login,
an error answered by Litestar's exception handler inside the route) and every
static file gets them, from one ASGI middleware on those routes, so a new page or
a new kind of answer cannot forget them. A header the response set itself wins.
"""

from __future__ import annotations

from collections.abc import Mapping

from litestar.datastructures import MutableScopeHeaders
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# What applies to any response a browser may render or frame.
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CSP,
}
# Pages may hold env values (the config editor): never cached.
PAGE_HEADERS = {**COMMON_HEADERS, "Cache-Control": "no-store"}
# The script and style sheet are public and may be cached.
STATIC_HEADERS = COMMON_HEADERS


class SecurityHeaders(ASGIMiddleware):
    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = dict(headers)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = MutableScopeHeaders.from_message(message)
                for name, value in self.headers.items():
                    if name not in present:
                        present[name] = value
            await send(message)

        await next_app(scope, receive, send_with_headers)
