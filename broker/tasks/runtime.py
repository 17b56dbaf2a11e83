"""What a worker keeps between jobs, on its one event loop (broker/worker.py): the async Redis
client, the stores, and one adapter per site (its HTTP pool and token cache survive from one job
to the next). Task functions take it as their first argument."""

from __future__ import annotations

from broker.adapter_pool import AdapterPool
from broker.config import Settings
from broker.metrics import Recorder
from broker.store.connect import async_client
from broker.store.health import HealthStore
from broker.store.history import HistoryDB
from broker.store.jobs import JobStore
from broker.store.keys import Keys
from broker.store.late_copies import LateCopies
from broker.store.sites import SiteStore


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.keys = Keys(settings.namespace)
        self.redis = async_client(settings.redis_url)
        self.jobs = JobStore(self.redis, self.keys)
        self.sites = SiteStore(self.redis, self.keys)
        self.health = HealthStore(self.redis, self.keys)
        self.late = LateCopies(self.redis, self.keys)
        self.metrics = Recorder(self.redis, self.keys)  # adapter latency, flushed to Redis (metrics.py)
        self.adapters = AdapterPool(self.sites, settings.allowed_site_hosts, settings.credentials, self.metrics)
        # final jobs past their retention move there (broker/tasks/archive.py); None: they stay in Redis
        self.history = HistoryDB(settings.history.url, settings.namespace) if settings.history.active else None

    async def aclose(self) -> None:
        await self.adapters.aclose()
        await self.metrics.aclose()
        await self.redis.aclose()
        if self.history is not None:
            await self.history.aclose()
