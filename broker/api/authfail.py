"""Failed authentications: throttled per client address, logged (never the token), counted.

Each failure adds one to a per-address counter in Redis (a one-minute window shared by every
replica) and to a broker-wide total that ``/metrics`` shows. An address with more than
``[api] auth_failures_per_minute`` failures in its window is answered 429 (with Retry-After)
until the window ends, before its token is even looked up; the replica keeps that verdict in
memory, so a good client's request costs nothing extra. Behind a reverse proxy on the same
host, uvicorn takes the client's address from ``X-Forwarded-For`` (its ``forwarded_allow_ips``
default trusts 127.0.0.1)."""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis

from broker.store.keys import Keys

log = logging.getLogger("superfed.auth")
WINDOW = 60  # seconds


class AuthFailures:
    def __init__(self, r: aioredis.Redis, keys: Keys, per_minute: int):
        self.r = r
        self.keys = keys
        self.per_minute = per_minute
        self._blocked: dict[str, float] = {}  # address -> monotonic time its block ends

    def blocked_for(self, address: str) -> int:
        """Seconds ``address`` must still wait (0: not blocked). No I/O."""
        if not self._blocked:
            return 0
        until = self._blocked.get(address)
        if until is None:
            return 0
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked[address]
            return 0
        return max(1, int(left + 0.999))

    async def failed(self, address: str, why: str) -> int:
        """Note one failure; returns the seconds to wait if the address is now blocked, else 0."""
        key = self.keys.auth_failures(address)
        async with self.r.pipeline(transaction=True) as p:
            p.incr(key)
            p.expire(key, WINDOW, nx=True)
            p.ttl(key)
            p.incr(self.keys.auth_failures_total)
            count, _, ttl, _ = await p.execute()
        count, ttl = int(count), int(ttl) if int(ttl) > 0 else WINDOW
        if count == 1 or count == self.per_minute + 1:  # the first, and the one that blocks: not a flood of lines
            log.warning("failed authentication from %s: %s (%d in this minute)", address, why, count)
        if self.per_minute and count > self.per_minute:
            self._blocked[address] = time.monotonic() + ttl
            if len(self._blocked) > 100_000:  # bound the memory an address sweep could take
                self._blocked.clear()
            return ttl
        return 0

    async def total(self) -> int:
        return int(await self.r.get(self.keys.auth_failures_total) or 0)
