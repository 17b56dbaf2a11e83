"""The SF API v1.2 simulator app: routes under ``/api/v1.2``, the token endpoint at
``/c2id/token``, ``/_sim`` control, and FastAPI-shaped errors (``{"detail": ...}``)."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException

from simulators.common.control import build_sim_app
from simulators.common.facility import SimSettings
from simulators.sfapi import account, compute, status, tasks, utilities
from simulators.sfapi.state import SfapiFacility
from simulators.sfapi.token import token
from simulators.sfapi.wire import ApiError, error_body, ok

log = logging.getLogger("superfed.sim.sfapi")


def _api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[bytes]:
    resp = ok({"detail": exc.detail}, status=exc.status)
    if exc.headers:
        resp.headers.update(exc.headers)
    return resp


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    # Litestar's own 404/405/400 in FastAPI's words
    words = {404: "Not Found", 405: "Method Not Allowed"}
    detail = words.get(exc.status_code) or exc.detail
    return ok({"detail": detail}, status=exc.status_code)


def _crash(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return ok({"detail": "Internal Server Error"}, status=500)


def create_app(settings: SimSettings) -> Litestar:
    if not settings.systems:
        settings.systems = ["perlmutter"]
    facility = SfapiFacility(settings)
    routes = [
        token,
        *status.ROUTES,
        *compute.ROUTES,
        *tasks.ROUTES,
        *utilities.ROUTES,
        *account.ROUTES,
    ]
    return build_sim_app(
        facility,
        routes,
        error_body=error_body,
        submit_path=r"/api/v1\.2/compute/jobs/[^/]+",
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _crash},
    )
