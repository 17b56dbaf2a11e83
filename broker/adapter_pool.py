"""One adapter per site per process, rebuilt when the site's config revision changes."""

from __future__ import annotations

from adapters import registry
from adapters.base import SiteAdapter
from broker.config import SiteConfig
from broker.store.sites import SiteStore


class AdapterPool:
    def __init__(self, sites: SiteStore):
        self.sites = sites
        self._adapters: dict[str, tuple[int, SiteAdapter]] = {}

    async def get(self, site: SiteConfig, revision: int) -> SiteAdapter:
        cached = self._adapters.get(site.name)
        if cached and cached[0] == revision:
            return cached[1]
        adapter = registry.build(
            site.kind, name=site.name, url=site.url, systems=site.systems, auth=site.auth, http=site.http
        )
        self._adapters[site.name] = (revision, adapter)
        if cached:
            await cached[1].aclose()
        return adapter

    async def by_name(self, name: str) -> tuple[SiteConfig, SiteAdapter] | None:
        stored = await self.sites.get(name)
        if stored is None:
            return None
        return stored.config, await self.get(stored.config, stored.revision)

    async def aclose(self) -> None:
        for _, a in self._adapters.values():
            await a.aclose()
        self._adapters.clear()
