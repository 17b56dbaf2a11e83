"""Leases: a Redis key held by one owner (``SET NX PX``), renewed by that owner only, gone
when the owner stops renewing it. A worker holds one for itself (its liveness: while it
exists, the jobs the worker claimed are its own) and one per periodic task it runs (one owner
per site and task across all workers)."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

# KEYS: the leases. ARGV: 1 token, 2 ttl ms. Per key: 1 renewed, 0 not ours (expired, or
# someone else's). Owners renew by value, so a lease that ran out and was taken by another
# owner is never extended by the old one.
_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
"""


class Leases:
    def __init__(self, r: aioredis.Redis, token: str):
        self.r = r
        self.token = token
        self._renew = r.register_script(_RENEW)
        self._release = r.register_script(_RELEASE)

    async def acquire(self, keys: Sequence[str], ttl_ms: int) -> list[bool]:
        """Try to take each lease (those already ours count as taken and are renewed)."""
        if not keys:
            return []
        async with self.r.pipeline(transaction=False) as p:
            for key in keys:
                p.set(key, self.token, nx=True, px=ttl_ms)
            got = await p.execute()
        taken = [bool(g) for g in got]
        mine = [k for k, g in zip(keys, taken, strict=True) if not g]
        if mine:  # already ours from an earlier round? then it is renewed, not lost
            renewed = await self.renew(mine, ttl_ms)
            it = iter(renewed)
            taken = [g or next(it) for g in taken]
        return taken

    async def renew(self, keys: Sequence[str], ttl_ms: int) -> list[bool]:
        """Extend the leases that are still ours; raises if Redis cannot be written."""
        if not keys:
            return []
        reply = await self._renew(keys=list(keys), args=[self.token, ttl_ms])
        return [bool(x) for x in reply]

    async def release(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        return int(await self._release(keys=list(keys), args=[self.token]))
