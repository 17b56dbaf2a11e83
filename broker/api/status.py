"""Sites (read) and health status, with the Server-Sent Events stream of changes."""

from __future__ import annotations

import time
import weakref
from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get
from litestar.datastructures import ResponseHeader
from litestar.openapi import ResponseSpec
from litestar.params import FromPath
from litestar.response import ServerSentEvent

from adapters.types import ComponentHealth, Incident
from broker.api.events import EventHub, TooManyStreams
from broker.api.openapi_docs import api_problems
from broker.api.problems import ApiError
from broker.config import PlacementConfig, SiteConfig, SiteLimits
from broker.health import HealthRecord, effective, visible_components
from broker.sanitise import sanitise
from broker.store import outcomes
from broker.store.coalesce import SharedCall
from broker.store.jobs import now_iso
from broker.store.sitecache import site_cache
from broker.store.sites import SiteStore
from broker.store.tokens import TokenRecord, digest

# documentation_only: the handler sets it; value="" tells the schema it is a string
ETAG = ResponseHeader(name="ETag", documentation_only=True, value="", description="the site's revision, for If-Match")


class SiteStatus(msgspec.Struct):
    site: str
    state: str
    checked_at: str | None
    age_s: float | None
    latency_ms: float | None
    components: list[ComponentHealth]
    incidents: list[Incident]
    consecutive_failures: int = 0
    error: str | None = None
    # the black-hole guard: why placement tries this site last, None when it does not
    demoted: str | None = None


class StatusReport(msgspec.Struct):
    generated_at: str
    sites: list[SiteStatus]


class SiteView(msgspec.Struct):
    name: str
    kind: str
    url: str
    systems: list[str]
    enabled: bool
    draining: bool
    weight: float
    limits: SiteLimits
    revision: int
    health: str


def site_status(site: SiteConfig, rec: HealthRecord | None, now: float) -> SiteStatus:
    if rec is None:
        return SiteStatus(
            site=site.name,
            state="unknown",
            checked_at=None,
            age_s=None,
            latency_ms=None,
            components=[],
            incidents=[],
            error="not checked yet",
        )
    state = effective(rec, site, now)
    components = visible_components(rec, site, now)
    return SiteStatus(
        site=site.name,
        state=state,
        checked_at=now_iso(rec.ok_at) if rec.ok_at else None,
        age_s=round(now - rec.ok_at, 3) if rec.ok_at else None,
        latency_ms=rec.latency_ms,
        components=components,
        incidents=rec.incidents,
        consecutive_failures=rec.failures,
        error=sanitise(rec.error),  # every token reads it: never the facility's verbatim text
    )


_enc = msgspec.json.Encoder()
_reports: weakref.WeakKeyDictionary[SiteStore, SharedCall[bytes]] = weakref.WeakKeyDictionary()


async def _demotions(sites: SiteStore, names: list[str], guard: PlacementConfig) -> dict[str, str | None]:
    return await outcomes.demotions(sites.r, sites.keys, names, guard)


def _report(sites: SiteStore, guard: PlacementConfig) -> SharedCall[bytes]:
    """The status report as JSON, read and built once for all the requests that arrive while
    one read is in flight (the read is two round trips: sites:version + MGET of the health,
    then the black-hole record)."""
    call = _reports.get(sites)
    if call is None:
        cache = site_cache(sites)

        async def build() -> bytes:
            stored, recs = await cache.with_health()
            now = time.time()
            demoted = await _demotions(sites, [s.config.name for s in stored], guard)
            report = [
                msgspec.structs.replace(
                    site_status(s.config, recs.get(s.config.name), now), demoted=demoted.get(s.config.name)
                )
                for s in stored
            ]
            return _enc.encode(StatusReport(generated_at=now_iso(now), sites=report))

        call = _reports[sites] = SharedCall(build)
    return call


class StatusController(Controller):
    path = "/api/v1/status"
    tags = ["status"]

    @get("/", operation_id="getStatus", summary="Every site's health", responses=api_problems())
    async def all(self, request: Request[Any, Any, Any]) -> Response[StatusReport]:
        st = request.app.state
        # the report arrives encoded (cached bytes); the annotation documents its schema
        body: Any = await _report(st.sites, st.settings.placement)()  # shared by concurrent requests
        return Response(body, media_type=MediaType.JSON)

    @get("/{site:str}", operation_id="getSiteStatus", summary="One site's health", responses=api_problems(404))
    async def one(self, request: Request[Any, Any, Any], site: FromPath[str]) -> SiteStatus:
        st = request.app.state
        stored = await st.sites.get(site)
        if stored is None:
            raise ApiError(404, "Not found", f"no site {site!r}")
        status = site_status(stored.config, await st.health.get(site), time.time())
        demoted = await _demotions(st.sites, [site], st.settings.placement)
        return msgspec.structs.replace(status, demoted=demoted.get(site))

    @get("/events", operation_id="streamStatusEvents",
         summary="Server-Sent Events: one per state change (429 beyond the per-token stream limit)",
         responses={**api_problems(), 200: ResponseSpec(
             str, media_type="text/event-stream", generate_examples=False,
             description="Server-Sent Events: `health` events, one per state change")})
    async def events(self, request: Request[TokenRecord, Any, Any]) -> ServerSentEvent:
        hub: EventHub = request.app.state.events
        _, _, secret = request.headers.get("authorization", "").partition(" ")
        try:
            stream = hub.stream(request.user, digest(secret.strip()))
        except TooManyStreams as exc:
            raise ApiError(429, "Too many requests",
                           f"the token {request.user.name!r} has {exc.limit} event streams open here already "
                           "(the limit); close one first", headers={"Retry-After": "15"}) from None
        return ServerSentEvent(stream)


class SiteController(Controller):
    path = "/api/v1/sites"
    tags = ["sites"]

    @get("/", operation_id="listSites", summary="Every site, with its health summary", responses=api_problems())
    async def list_sites(self, request: Request[Any, Any, Any]) -> list[SiteView]:
        st = request.app.state
        stored = await st.sites.all()
        recs = await st.health.many([s.config.name for s in stored])
        now = time.time()
        return [_view(s.config, s.revision, effective(recs.get(s.config.name), s.config, now)) for s in stored]

    @get(
        "/{name:str}",
        operation_id="getSite",
        summary="One site (never its secrets); ETag = its revision",
        response_headers=[ETAG],
        responses=api_problems(404),
    )
    async def get_site(self, request: Request[Any, Any, Any], name: FromPath[str]) -> Response[SiteView]:
        st = request.app.state
        stored = await st.sites.get(name)
        if stored is None:
            raise ApiError(404, "Not found", f"no site {name!r}")
        view = _view(stored.config, stored.revision, effective(await st.health.get(name), stored.config, time.time()))
        return Response(view, headers={"ETag": f'"{stored.revision}"'})


def _view(c: SiteConfig, revision: int, health: str) -> SiteView:
    return SiteView(
        name=c.name,
        kind=c.kind,
        url=c.url,
        systems=c.systems,
        enabled=c.enabled,
        draining=c.draining,
        weight=c.weight,
        limits=c.limits,
        revision=revision,
        health=health,
    )
