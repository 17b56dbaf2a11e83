"""Each site's last health check, with its time, and the change events (the records and the
rules about them are in ``broker.health``). An event goes out as the SSE stream shows it, its
``at`` in ISO 8601 UTC as every other time in the API (the rules keep epoch seconds)."""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis

from broker.health import HealthEvent, HealthRecord
from broker.store.jobs import now_iso
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
                p.publish(self.keys.events, _enc.encode(wire_event(ev)))
            await p.execute()


def wire_event(ev: HealthEvent) -> dict[str, object]:
    """The event as published and streamed: its fields in order, ``at`` in ISO 8601."""
    return {**msgspec.structs.asdict(ev), "at": now_iso(ev.at)}
