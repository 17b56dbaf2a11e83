"""Site configuration at run time: Redis is authoritative, seeded from the TOML file.

Each site is stored as ``{"revision": n, "config": {...}}`` in one hash, so that every API
replica and worker reads the same config and sees an admin's change at once."""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis

from broker.config import SiteConfig, validate_site
from broker.store.keys import Keys


class StoredSite(msgspec.Struct):
    revision: int
    config: SiteConfig


_dec = msgspec.json.Decoder(StoredSite)
_enc = msgspec.json.Encoder()


class SiteStore:
    def __init__(self, r: aioredis.Redis, keys: Keys):
        self.r = r
        self.keys = keys

    async def seed(self, sites: list[SiteConfig]) -> list[str]:
        """Add the file's sites that Redis does not have yet; returns the names added."""
        added = []
        for s in sites:
            if await self.r.hsetnx(self.keys.sites, s.name, _enc.encode(StoredSite(1, s))):
                added.append(s.name)
        if added:
            await self.r.incr(self.keys.sites_version)
        return added

    async def all(self) -> list[StoredSite]:
        raw = await self.r.hgetall(self.keys.sites)
        out = []
        for value in raw.values():
            try:
                out.append(_dec.decode(value))
            except msgspec.ValidationError:
                continue  # a record another version wrote; never crash a reader over it
        return sorted(out, key=lambda s: s.config.name)

    async def get(self, name: str) -> StoredSite | None:
        raw = await self.r.hget(self.keys.sites, name)
        return _dec.decode(raw) if raw else None

    async def put(self, site: SiteConfig, revision: int) -> None:
        await self.r.hset(self.keys.sites, site.name, _enc.encode(StoredSite(revision, site)))
        await self.r.incr(self.keys.sites_version)

    async def delete(self, name: str) -> None:
        await self.r.hdel(self.keys.sites, name)
        await self.r.incr(self.keys.sites_version)

    async def version(self) -> int:
        return int(await self.r.get(self.keys.sites_version) or 0)


__all__ = ["SiteStore", "StoredSite", "validate_site"]
