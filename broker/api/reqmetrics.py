"""Requests and their latency by route, for /metrics (broker/metrics.py keeps them in Redis),
and the access log (logger ``superfed.access``: a line a request, `[api] access_log`).

The label is the route's template (``/api/v1/jobs/{job_id}``), never the raw path: a path holds job
ids and file names, and one label value per job would grow Prometheus' series without bound.
A request no route matched is counted under ``unmatched``; a method outside HTTP's usual ones
under ``OTHER`` (both bounded for the same reason)."""

from __future__ import annotations

import logging
import time
from typing import Any

from litestar.datastructures import State
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from broker.metrics import HTTP_LATENCY, HTTP_REQUESTS

access = logging.getLogger("superfed.access")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """ASGI wrapper outside the router: it sees every answer, errors and 404s included, and
    reads the template the router wrote into the scope once the request is done."""

    def __init__(self, app: ASGIApp, state: State, log_access: bool = True):
        self.app = app
        self.state = state
        self.log_access = log_access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an exception that escapes every handler ends as a 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            recorder = getattr(self.state, "metrics", None)  # None before the lifespan ran
            if recorder is not None:
                raw: Any = scope.get("path_template")
                route = raw if isinstance(raw, str) and raw else "unmatched"
                method = scope.get("method", "")
                method = method if method in _METHODS else "OTHER"
                recorder.count(HTTP_REQUESTS, (method, route, str(status)))
                recorder.observe(HTTP_LATENCY, (method, route), time.perf_counter() - start)
            if self.log_access and access.isEnabledFor(logging.INFO):
                # the path, never the query (it may name files) nor any header (tokens)
                client = scope.get("client")
                access.info("%s %s %s %d %.1f ms", client[0] if client else "-", scope.get("method", ""),
                            scope.get("path", ""), status, (time.perf_counter() - start) * 1000)
