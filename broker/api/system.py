"""Operations endpoints: liveness, readiness, Prometheus metrics, the docs' local assets."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.exceptions import NotAuthorizedException
from litestar.openapi import ResponseSpec
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from broker.api.openapi_docs import problem_responses
from broker.health import effective
from broker.states import STATES
from broker.store import outcomes

_HEALTH = {"up": 1, "degraded": 0.5, "down": 0, "unknown": -1}


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
        reg = CollectorRegistry()
        jobs = Gauge("superfed_jobs", "Jobs known to the broker, by state", ["state"], registry=reg)
        async with st.redis.pipeline(transaction=False) as p:
            for s in STATES:
                p.zcard(st.rkeys.jobs_by_state(s))
            counts = await p.execute()
        for s, n in zip(STATES, counts, strict=True):
            jobs.labels(s).set(n)
        health = Gauge("superfed_site_health", "1 up, 0.5 degraded, 0 down, -1 unknown", ["site"], registry=reg)
        backlog = Gauge("superfed_site_backlog", "Unfinished broker jobs placed at the site", ["site"], registry=reg)
        stored = await st.sites.all()
        names = [s.config.name for s in stored]
        recs = await st.health.many(names)
        backlogs = await st.jobs.backlogs(names)
        demoted = Gauge(
            "superfed_site_demoted",
            "1 when the black-hole guard demotes the site (recent submissions refused or failed at once)",
            ["site"],
            registry=reg,
        )
        guard = st.settings.placement
        demotions = await outcomes.demotions(st.redis, st.rkeys, names, guard)
        now = time.time()
        for s in stored:
            health.labels(s.config.name).set(_HEALTH[effective(recs.get(s.config.name), s.config, now)])
            backlog.labels(s.config.name).set(backlogs.get(s.config.name, 0))
            demoted.labels(s.config.name).set(1 if demotions.get(s.config.name) else 0)
        failures = Counter("superfed_auth_failures", "Failed authentications (no token, or an unknown, revoked "
                           "or expired one), every replica together", registry=reg)
        failures.inc(await st.auth_failures.total())
        return Response(generate_latest(reg), media_type=CONTENT_TYPE_LATEST)


def _metrics_allowed(want: str | None, header: str) -> None:
    """No setting: /metrics is open (keep it inside, as deploy/nginx does). Else the bearer
    token whose SHA-256 the setting names, compared in constant time."""
    if want is None:
        return
    scheme, _, token = header.partition(" ")
    got = hashlib.sha256(token.strip().encode()).hexdigest() if scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(got, want):
        raise NotAuthorizedException("/metrics needs Authorization: Bearer <the metrics token>")
