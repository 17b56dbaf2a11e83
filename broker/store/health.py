"""Each site's last health check, with its time, and the change events (the records and the
rules about them are in ``broker.health``). An event goes out as the SSE stream shows it, its
``at`` in ISO 8601 UTC as every other time in the API (the rules keep epoch seconds)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

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


class RecentAccounts:
    """Each site's accounts as its last health check found them (``accounts_of`` says how),
    read at most once per ``ttl`` seconds by this process (concurrent callers share the one
    read). Intake checks every job's project against them: an MGET and a record decode per
    site on each POST cost intake a tenth to a fifth of its rate, for figures that change once
    per health interval."""

    def __init__(self, store: HealthStore, accounts_of: Callable[[HealthRecord | None], set[str] | None],
                 ttl: float = 1.0):
        self.store = store
        self.accounts_of = accounts_of
        self.ttl = ttl
        self._at = -float("inf")
        self._names: frozenset[str] = frozenset()
        self._value: dict[str, set[str] | None] = {}
        self._pending: asyncio.Future[dict[str, set[str] | None]] | None = None

    async def get(self, sites: list[str]) -> dict[str, set[str] | None]:
        names = frozenset(sites)
        if names <= self._names and time.monotonic() - self._at < self.ttl:
            return {n: self._value[n] for n in sites}
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._read(sorted(names | self._names)))
        pending = self._pending
        try:
            value = await asyncio.shield(pending)
        finally:
            if self._pending is pending and pending.done():
                self._pending = None
        return {n: value.get(n) for n in sites}

    async def _read(self, sites: list[str]) -> dict[str, set[str] | None]:
        recs = await self.store.many(sites)
        value = {n: self.accounts_of(r) for n, r in recs.items()}
        self._value, self._names, self._at = value, frozenset(sites), time.monotonic()
        return value
