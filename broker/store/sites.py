"""Site configuration at run time: Redis is authoritative, seeded from the TOML file.

Each site is stored as ``{"revision": n, "config": {...}}`` in one hash, so that every API
replica and worker reads the same config and sees an admin's change at once."""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis

from broker.config import SiteConfig
from broker.store.keys import Keys


class StoredSite(msgspec.Struct):
    revision: int
    config: SiteConfig


_dec = msgspec.json.Decoder(StoredSite)
_enc = msgspec.json.Encoder()

# Compare-and-set on a site's revision, so that two admins (on any replicas) cannot both
# replace the same revision. StoredSite encodes "revision" first, so the first match is it.
# KEYS: 1 sites hash, 2 sites version; ARGV: 1 name, 2 expected revision, 3 new record JSON
_REPLACE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return {'missing', 0} end
local rev = tonumber(string.match(cur, '"revision":(%d+)'))
if rev ~= tonumber(ARGV[2]) then return {'stale', rev} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return {'ok', rev + 1}
"""

# Delete a site only while no unfinished broker job is placed there or held by it.
# KEYS: 1 sites hash, 2 sites version, 3 assigned hash, 4 active hash, 5 health; ARGV: 1 name
_DELETE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {'missing', 0} end
local busy = redis.call('HLEN', KEYS[3]) + redis.call('HLEN', KEYS[4])
if busy > 0 then return {'busy', busy} end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[5])
redis.call('INCR', KEYS[2])
return {'ok', 0}
"""


class SiteStore:
    def __init__(self, r: aioredis.Redis, keys: Keys):
        self.r = r
        self.keys = keys
        self._replace = r.register_script(_REPLACE)
        self._delete = r.register_script(_DELETE)

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

    async def create(self, site: SiteConfig) -> StoredSite | None:
        """Add a new site at revision 1; None if the name is taken."""
        stored = StoredSite(1, site)
        if not await self.r.hsetnx(self.keys.sites, site.name, _enc.encode(stored)):
            return None
        await self.r.incr(self.keys.sites_version)
        return stored

    async def replace(self, site: SiteConfig, expected: int) -> tuple[str, int]:
        """Replace the site if its revision is still ``expected``: ("ok", new revision),
        ("stale", current revision) or ("missing", 0)."""
        new = _enc.encode(StoredSite(expected + 1, site))
        status, rev = await self._replace(
            keys=[self.keys.sites, self.keys.sites_version], args=[site.name, expected, new]
        )
        return str(status), int(rev)

    async def delete_if_idle(self, name: str) -> tuple[str, int]:
        """Remove the site unless it holds unfinished jobs: ("ok", 0), ("busy", how many
        unfinished jobs) or ("missing", 0)."""
        k = self.keys
        status, n = await self._delete(
            keys=[k.sites, k.sites_version, k.assigned(name), k.active(name), k.health(name)], args=[name]
        )
        return str(status), int(n)

    async def delete(self, name: str) -> None:
        await self.r.hdel(self.keys.sites, name)
        await self.r.incr(self.keys.sites_version)

    async def version(self) -> int:
        return int(await self.r.get(self.keys.sites_version) or 0)
