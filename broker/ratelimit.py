"""Authentication and rate limiting in one Redis round trip.

One Lua script (one EVALSHA per request) looks the token up by its SHA-256, counts the
request in the token's fixed one-minute window, and notes when the token was last used (at
most one write a minute per token). Every API replica shares the counters, so the limit holds
for the whole service, not per process.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

# KEYS: 1 tokens hash, 2 last-used hash, 3 this token's rate counter
# ARGV: 1 digest, 2 now (unix seconds), 3 limit per window (0 = off), 4 window (seconds)
AUTHENTICATE = """
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return {'', 0, 0} end
local limit = tonumber(ARGV[3])
local n, ttl = 0, 0
if limit > 0 then
  n = redis.call('INCR', KEYS[3])
  if n == 1 then redis.call('EXPIRE', KEYS[3], ARGV[4]) end
  if n > limit then
    ttl = redis.call('TTL', KEYS[3])
    if ttl == -1 then redis.call('EXPIRE', KEYS[3], ARGV[4]); ttl = tonumber(ARGV[4]) end
    if ttl < 1 then ttl = 1 end
  end
end
local now = tonumber(ARGV[2])
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if now - last >= 60 then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
return {rec, n, ttl}
"""

WINDOW_SECONDS = 60


class Verdict(msgspec.Struct):
    """What the script said: the raw token record ("" when unknown), the request's number in
    its window, and the seconds until the window ends when the limit is exceeded (else 0)."""

    record: str
    count: int
    retry_after: int

    @property
    def limited(self) -> bool:
        return self.retry_after > 0


def verdict(reply: Any) -> Verdict:
    rec, n, ttl = reply
    if isinstance(rec, bytes):
        rec = rec.decode()
    return Verdict(record=rec or "", count=int(n), retry_after=max(0, math.ceil(int(ttl))))
