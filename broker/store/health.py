"""Each site's last health check, with its time, and the change events."""

from __future__ import annotations

import time

import msgspec
import redis.asyncio as aioredis

from adapters.types import ComponentHealth, Incident
from broker.store.keys import Keys


class HealthRecord(msgspec.Struct):
    site: str
    state: str  # as checked: up/degraded/down/unknown
    components: list[ComponentHealth] = []
    incidents: list[Incident] = []
    checked_at: float | None = None  # last check, successful or not
    ok_at: float | None = None  # last successful check
    latency_ms: float | None = None
    failures: int = 0  # consecutive failed checks
    error: str | None = None  # why the last check failed
    allocations: dict[str, float] | None = None  # account -> node-hours left

    def effective_state(self, stale_after: float, now: float | None = None) -> str:
        """A reading older than ``stale_after`` is ``unknown``, never silently ``up``."""
        now = time.time() if now is None else now
        if self.ok_at is None or now - self.ok_at > stale_after:
            return "unknown"
        return self.state


class HealthEvent(msgspec.Struct):
    site: str
    component: str | None
    state: str
    previous: str | None
    at: float
    detail: str = ""


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
