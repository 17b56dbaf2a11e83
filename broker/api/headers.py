"""Security headers on every answer, and a Content-Security-Policy the docs page can live with.

The API answers JSON, never HTML, so its policy forbids everything (``default-src 'none'``).
The dashboard (broker/api/dashboard.py) sets its own, stricter than the docs': no inline code.
The one HTML page, Swagger UI at ``/schema``, loads its script and styles from this server
(``/schema/assets``) and starts with one inline script; that script is allowed by its SHA-256
alone (``SwaggerWithCsp`` computes it as it renders the page), never by ``'unsafe-inline'``.
Swagger UI sets inline style attributes as it draws, so styles need ``'unsafe-inline'``."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from litestar import Request
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_SCOPE_KEY = "superfed.csp"  # where the docs page leaves its own policy for the wrapper below

_BASE = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_API_CSP = (b"content-security-policy", API_CSP.encode())
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)


def docs_csp(html: bytes) -> str:
    """The policy for one rendered docs page: its own assets, and its inline scripts by hash."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def set_csp(request: Request[Any, Any, Any], policy: str) -> None:
    """Give this one answer its own policy instead of the API's (an HTML page: the docs, the dashboard)."""
    request.scope[_SCOPE_KEY] = policy  # type: ignore[literal-required]


class SwaggerWithCsp(SwaggerRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        html = super().render(request, openapi_schema)
        set_csp(request, docs_csp(html))
        return html


class SecurityHeaders:
    """Outermost ASGI wrapper: adds the headers above to every HTTP answer (errors and 404s
    included) unless the answer set its own policy."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                headers.extend(_BASE)
                own = scope.get(_SCOPE_KEY)  # type: ignore[misc]
                headers.append((b"content-security-policy", str(own).encode()) if own else _API_CSP)
                message["headers"] = headers  # type: ignore[typeddict-unknown-key]
            await send(message)

        await self.app(scope, receive, send_with_headers)
