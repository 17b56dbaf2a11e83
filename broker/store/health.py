"""Each site's last health check, with its time, and the change events (the records and the
rules about them are in ``broker.health``)."""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis

from broker.health import HealthEvent, HealthRecord
from broker.store.keys import Keys

_dec = msgspec.json.Decoder(HealthRecord)
_enc = msgspec.json.Encoder()


class HealthStore:
    def __init__(self, r: aioredis.Redis, keys: Keys):
        self.r = r
        self.keys = keys

    async def get(self, site: str) -> HealthRecord | None:
        raw = await self.r.get(self.keys.health(site))
        return _dec.decode(raw) if raw else None

    async def many(self, sites: list[str]) -> dict[str, HealthRecord | None]:
        if not sites:
            return {}
        raws = await self.r.mget([self.keys.health(s) for s in sites])
        return {s: (_dec.decode(raw) if raw else None) for s, raw in zip(sites, raws, strict=True)}

    async def put(self, rec: HealthRecord, events: list[HealthEvent]) -> None:
        async with self.r.pipeline(transaction=True) as p:
            p.set(self.keys.health(rec.site), _enc.encode(rec))
            for ev in events:
                p.publish(self.keys.events, _enc.encode(ev))
            await p.execute()
