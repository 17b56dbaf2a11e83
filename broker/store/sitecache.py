"""Each process's decoded copy of the site configs, kept as long as ``sites:version`` says
they have not changed, and the health of every site read with it in one round trip.

Every write to the sites hash (SiteStore: seed, put, create, replace, delete) increments
``sites:version`` in the same step or the next, so a reader that finds the counter unchanged
may reuse the configs it decoded last time: a GET instead of an HGETALL and a decode per site.
The configs are re-read at least every ``max_age`` seconds all the same, a safety net against
a write that bypassed SiteStore (someone at redis-cli).

Concurrent callers of ``all`` share the GET in flight (coalesce.py).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

import msgspec

from broker.health import HealthRecord
from broker.store.autopipe import Command, shared
from broker.store.coalesce import SharedCall
from broker.store.sites import SiteStore, StoredSite

_site_dec = msgspec.json.Decoder(StoredSite)
_health_dec = msgspec.json.Decoder(HealthRecord)

Snapshot = tuple[list[StoredSite], dict[str, HealthRecord | None]]


class SiteCache:
    def __init__(self, sites: SiteStore, max_age: float = 5.0):
        self.sites = sites
        self.r = sites.r
        self.keys = sites.keys
        self.max_age = max_age
        self._version: Any = object()  # matches no value Redis can return
        self._stored: list[StoredSite] = []
        self._read_at = 0.0
        self._all = SharedCall(self._read_all)
        self._reload_shared = SharedCall(self._reload)

    def _fresh(self, version: Any) -> bool:
        return version == self._version and time.monotonic() - self._read_at < self.max_age

    async def _reload(self) -> list[StoredSite]:
        # version and configs in one MULTI: the pair is consistent with each other
        async with self.r.pipeline(transaction=True) as p:
            p.get(self.keys.sites_version)
            p.hgetall(self.keys.sites)
            version, raw = await p.execute()
        out = []
        for value in raw.values():
            try:
                out.append(_site_dec.decode(value))
            except msgspec.ValidationError:
                continue  # a record another version wrote; never crash a reader over it
        out.sort(key=lambda s: s.config.name)
        self._version, self._stored, self._read_at = version, out, time.monotonic()
        return out

    async def all(self) -> list[StoredSite]:
        """Every site, sorted by name (as SiteStore.all), in one GET when nothing changed."""
        return await self._all()

    async def _read_all(self) -> list[StoredSite]:
        version = await self.r.get(self.keys.sites_version)
        return self._stored if self._fresh(version) else await self._reload()

    async def read_with(self, reads: Callable[[list[str]], list[Command]]) -> tuple[list[StoredSite], list[Any]]:
        """Every site (as ``all``) and the replies to ``reads(their names)``, in one round
        trip when nothing changed: the version counter goes in the same batch (autopipe.py,
        shared with whatever else this process sends meanwhile). When the configs changed they
        are read again (once for all concurrent callers) and so are ``reads``."""
        stored, res = self._stored, []
        for _ in range(2):
            stored = self._stored
            res = await shared(self.r).many([("GET", self.keys.sites_version), *reads([s.config.name for s in stored])])
            if self._fresh(res[0]):
                break
            await self._reload_shared()
        # (changed again meanwhile: the replies still match ``stored``, one version behind)
        return stored, res[1:]

    async def get(self, name: str) -> StoredSite | None:
        return next((s for s in await self.all() if s.config.name == name), None)

    async def with_health(self) -> Snapshot:
        """Every site and its last health record, in one round trip when nothing changed."""
        stored = self._stored
        names = [s.config.name for s in stored]
        async with self.r.pipeline(transaction=False) as p:
            p.get(self.keys.sites_version)
            if names:
                p.mget([self.keys.health(n) for n in names])
            res = await p.execute()
        if not self._fresh(res[0]):
            stored = await self._reload()
            names = [s.config.name for s in stored]
            raws = await self.r.mget([self.keys.health(n) for n in names]) if names else []
        else:
            raws = res[1] if names else []
        return stored, {n: (_health_dec.decode(raw) if raw else None) for n, raw in zip(names, raws, strict=True)}


_caches: weakref.WeakKeyDictionary[SiteStore, SiteCache] = weakref.WeakKeyDictionary()


def site_cache(sites: SiteStore) -> SiteCache:
    """The one cache of this SiteStore (one per app or worker runtime)."""
    cache = _caches.get(sites)
    if cache is None:
        cache = _caches[sites] = SiteCache(sites)
    return cache
