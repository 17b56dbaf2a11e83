"""What a worker process keeps between RQ jobs: one event loop in a thread, one async Redis
client, and one adapter (with its HTTP pool and token cache) per site.

RQ runs each job function synchronously; the functions in ``entry.py`` hand their coroutine to
this loop, so connection pools and facility tokens survive from one job to the next instead of
being rebuilt for every job (RQ would otherwise start a fresh event loop per job)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from adapters.base import SiteAdapter
from broker.adapter_pool import AdapterPool
from broker.config import Settings, SiteConfig
from broker.store.connect import async_client
from broker.store.health import HealthStore
from broker.store.jobs import JobStore
from broker.store.keys import Keys
from broker.store.sites import SiteStore

T = TypeVar("T")


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.keys = Keys(settings.namespace)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="superfed-loop", daemon=True)
        self._thread.start()
        self.redis = self.call(self._connect)
        self.jobs = JobStore(self.redis, self.keys)
        self.sites = SiteStore(self.redis, self.keys)
        self.health = HealthStore(self.redis, self.keys)
        self.adapters = AdapterPool(self.sites)

    async def _connect(self) -> Any:
        return async_client(self.settings.redis_url)

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None) -> T:
        """Run ``fn(*args)`` on the runtime's loop and wait for it (from a non-loop thread)."""
        fut = asyncio.run_coroutine_threadsafe(fn(*args), self.loop)
        try:
            return fut.result(timeout)
        except BaseException:
            # RQ's job timeout or a cold shutdown interrupts the waiting thread; stop the
            # coroutine too, so it cannot go on alongside the retry RQ schedules for it
            fut.cancel()
            raise

    async def adapter(self, site: SiteConfig, revision: int) -> SiteAdapter:
        return await self.adapters.get(site, revision)

    async def site_adapter(self, name: str) -> tuple[SiteConfig, SiteAdapter] | None:
        return await self.adapters.by_name(name)

    def close(self) -> None:
        async def _close() -> None:
            await self.adapters.aclose()
            await self.redis.aclose()

        try:
            self.call(_close, timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


_current: Runtime | None = None


def install(rt: Runtime) -> None:
    global _current
    _current = rt


def current() -> Runtime:
    if _current is None:
        # an RQ job run outside `superfed worker` (e.g. `rq worker`): build from the environment
        import os

        from broker.config import load

        path = os.environ.get("SUPERFED_CONFIG")
        if not path:
            raise RuntimeError("no superfed runtime: run `superfed worker --config FILE` or set SUPERFED_CONFIG")
        install(Runtime(load(path)))
    assert _current is not None
    return _current
