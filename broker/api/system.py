"""Operations endpoints: liveness, readiness, Prometheus metrics, the docs' local assets."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.exceptions import NotAuthorizedException
from litestar.openapi import ResponseSpec
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from broker.api.openapi_docs import problem_responses
from broker.metrics import scrape


class SystemController(Controller):
    include_in_schema = True
    tags = ["operations"]

    @get("/healthz", exclude_from_auth=True, summary="The process is alive")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", exclude_from_auth=True, summary="Redis is reachable",
         responses={503: ResponseSpec(dict[str, str], description="Redis is not reachable (`reason` says how)",
                                      generate_examples=False)})
    async def readyz(self, request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
        try:
            await request.app.state.redis.ping()
        except Exception as exc:
            return Response({"status": "not ready", "reason": f"redis: {type(exc).__name__}"}, status_code=503)
        return Response({"status": "ready"})

    @get("/metrics", exclude_from_auth=True, media_type=CONTENT_TYPE_LATEST,
         summary="Prometheus metrics (a bearer token when [api] metrics_token_sha256 is set)",
         responses=problem_responses(401))
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        st = request.app.state
        _metrics_allowed(st.settings.api.metrics_token_sha256, request.headers.get("authorization", ""))
        # every family is broker-wide, read from Redis (broker/metrics.py says why)
        body = await scrape(st.redis, st.rkeys, await st.sites.all(), st.settings.placement,
                            getattr(st, "metrics", None))
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def _metrics_allowed(want: str | None, header: str) -> None:
    """No setting: /metrics is open (keep it inside, as deploy/nginx does). Else the bearer
    token whose SHA-256 the setting names, compared in constant time."""
    if want is None:
        return
    scheme, _, token = header.partition(" ")
    got = hashlib.sha256(token.strip().encode()).hexdigest() if scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(got, want):
        raise NotAuthorizedException("/metrics needs Authorization: Bearer <the metrics token>")
