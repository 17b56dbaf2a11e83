"""The Litestar application factory. Nothing runs at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import anyio
import swagger_ui_bundle
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import PluginProtocol
from litestar.static_files import create_static_files_router
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker import tracing
from broker.adapter_pool import AdapterPool
from broker.api.admin import ADMIN_CONTROLLERS
from broker.api.auth import BearerAuth
from broker.api.authfail import AuthFailures
from broker.api.batch import JobBatchController
from broker.api.dashboard import DashboardController, assets_router
from broker.api.events import EventHub
from broker.api.files import FileController, ProjectController
from broker.api.headers import SecurityHeaders, SwaggerWithCsp
from broker.api.jobs import JobController, PlacementController
from broker.api.openapi_docs import document
from broker.api.overview import OverviewController
from broker.api.problems import EXCEPTION_HANDLERS, problem_details
from broker.api.reqmetrics import RequestMetrics
from broker.api.status import StatusController
from broker.api.system import SystemController
from broker.api.usage import UsageController
from broker.bootstrap import seed
from broker.config import Settings
from broker.durability import Durability, DurabilityError
from broker.health import accounts_known
from broker.metrics import Recorder
from broker.store import redis_auth
from broker.store.connect import async_client, sync_client
from broker.store.health import HealthStore, RecentAccounts
from broker.store.history import HistoryDB
from broker.store.jobs import JobStore
from broker.store.keys import Keys
from broker.store.sites import SiteStore
from broker.store.tokens import TokenStore

ASSETS = "/schema/assets"


def _lifespan(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        st = app.state
        # refuse to serve over a Redis anyone can write to (unless the config allows it)
        await anyio.to_thread.run_sync(redis_auth.check, settings.redis_url,
                                       settings.allow_unauthenticated_redis, "superfed serve")
        st.redis = async_client(settings.redis_url)
        st.sync_redis = sync_client(settings.redis_url)  # RQ's enqueue is synchronous
        st.jobs = JobStore(st.redis, st.rkeys)
        # final jobs past their retention are read from there (None: every job stays in Redis)
        st.history = HistoryDB(settings.history.url, settings.namespace) if settings.history.active else None
        st.sites = SiteStore(st.redis, st.rkeys)
        st.health = HealthStore(st.redis, st.rkeys)
        st.accounts = RecentAccounts(st.health, accounts_known)
        st.tokens = TokenStore(st.redis, st.rkeys)
        st.metrics = Recorder(st.redis, st.rkeys)
        st.adapters = AdapterPool(st.sites, settings.allowed_site_hosts, settings.credentials, st.metrics)
        st.auth_failures = AuthFailures(st.redis, st.rkeys, settings.api.auth_failures_per_minute)
        st.events = EventHub(st.redis, st.rkeys, settings.api.max_streams_per_token)
        st.durability = Durability(st.redis, st.rkeys, settings.durability)
        if settings.durability.level == "disk":
            # a server that does not fsync before it replies cannot keep the promise: refuse to
            # start (a Redis not up yet is checked by intake, before its first job)
            problem = None
            with suppress(RedisConnectionError, RedisTimeoutError, OSError):
                problem = await st.durability.server_problem()
            if problem:
                logging.getLogger("superfed.api").error("refusing to start: %s; [durability] level = \"disk\" needs "
                                                        "appendonly yes and appendfsync always", problem)
                await st.redis.aclose()
                st.sync_redis.close()
                raise DurabilityError(f"superfed serve: refusing to start: {problem}; [durability] level = "
                                      "\"disk\" needs appendonly yes and appendfsync always (deploy/README.md)")
        # Redis may come later: requests answer 503 until it does, and workers seed too
        with suppress(Exception):
            await seed(st.redis, settings)
        try:
            yield
        finally:
            await st.events.aclose()
            await st.adapters.aclose()
            await st.metrics.aclose()
            await st.redis.aclose()
            st.sync_redis.close()
            if st.history is not None:
                await st.history.aclose()

    return lifespan


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings()
    # ADMIN_CONTROLLERS includes the site routes (status.SiteController extended with admin ones)
    api_handlers = [
        JobController,
        JobBatchController,
        PlacementController,
        StatusController,
        OverviewController,
        FileController,
        ProjectController,
        UsageController,
        *ADMIN_CONTROLLERS,
    ]
    swagger = SwaggerWithCsp(
        js_url=f"{ASSETS}/swagger-ui-bundle.js",
        css_url=f"{ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
        path="/",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
    )
    openapi = OpenAPIConfig(
        title="superfed",
        version="0.1.0",
        description="One API over several supercomputing facilities (NERSC SF API, CSCS FirecREST, DOE IRI).",
        path="/schema",
        render_plugins=[swagger],
        components=Components(
            security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", description="superfed API token")}
        ),
    )
    assets = create_static_files_router(
        path=ASSETS,
        directories=[Path(swagger_ui_bundle.swagger_ui_path)],
        include_in_schema=False,
        opt={"public": True},
    )
    auth = DefineMiddleware(BearerAuth, exclude=["^/schema", "^/healthz", "^/readyz", "^/metrics", "^/dashboard"])
    # the token the auth middleware asks for, said where the routes are (the operations routes need none)
    api = Router(path="/", route_handlers=api_handlers, security=[{"bearer": []}])
    plugins: list[PluginProtocol] = [problem_details()]
    if tracing.setup(settings, "api"):
        # a server span per request: the trace a job's submission and facility calls join
        plugins.append(tracing.litestar_plugin())
    app = Litestar(
        route_handlers=[api, SystemController, assets, DashboardController, assets_router()],
        middleware=[auth],
        exception_handlers=EXCEPTION_HANDLERS,
        plugins=plugins,
        openapi_config=openapi,
        lifespan=[_lifespan(settings)],
        state=State({"settings": settings, "rkeys": Keys(settings.namespace)}),
        request_max_body_size=settings.api.max_body_bytes,
        on_app_init=[],
        debug=False,
    )
    document(app.openapi_schema)  # what the routes cannot declare (see openapi_docs)
    # outermost, so that every answer carries them: errors, 404s and the docs included
    app.asgi_handler = SecurityHeaders(app.asgi_handler)
    # outside the router, so that 404s and errors are counted too (under the route they matched)
    app.asgi_handler = RequestMetrics(app.asgi_handler, app.state, settings.api.access_log)
    return app
