"""The operators' dashboard: one HTML page and its script and styles, all served from the
package (broker/dashboard/), no CDN and no build step.

The page itself needs no token (it holds no data): it asks for one and then reads the API
with it. Its policy allows only this server's own script and styles, with no inline script or
style at all, and keeps ``frame-ancestors 'none'``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Controller, MediaType, Request, Response, get
from litestar.static_files import create_static_files_router

from broker.api.headers import set_csp

HERE = Path(__file__).resolve().parent.parent / "dashboard"
ASSETS = "/dashboard/assets"
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class DashboardController(Controller):
    include_in_schema = False  # a page for people, not part of the API

    @get("/dashboard", exclude_from_auth=True, media_type=MediaType.HTML, cache_control=None)
    async def page(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        set_csp(request, DASHBOARD_CSP)
        # read per request: small, and an edited page shows without a restart
        return Response((HERE / "index.html").read_bytes(), media_type=MediaType.HTML,
                        headers={"Cache-Control": "no-store"})


def assets_router() -> Any:
    return create_static_files_router(path=ASSETS, directories=[HERE], include_in_schema=False,
                                      opt={"exclude_from_auth": True}, send_as_attachment=False)
