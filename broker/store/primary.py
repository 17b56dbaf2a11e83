"""Since when has the current Redis primary held the broker's data?

Two events can lose the last writes Redis acknowledged: a restart (AOF ``everysec``: the last
second) and a failover (asynchronous replication: what had not reached the replica). After
either, a job's "in flight" mark may be gone although its try reached a facility, and a lease
may have run out while nothing answered. ``since`` is the later of the two: the server's start
(INFO's uptime) and, when the server was promoted from replica since it started (INFO
replication's ``second_repl_offset`` is set), when the broker first saw it promoted. Redis does
not say when a promotion happened, so the first broker process that notices it records the
time under the new replication id (SET NX, the same for every process); processes ask at most
once a second, so that is within about a second of the promotion.

A server that says neither (the demo's embedded fakeredis: no INFO replication) counts as
never restarted nor promoted (0.0)."""

from __future__ import annotations

import time
import weakref
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from broker.store.keys import Keys

_cache: weakref.WeakKeyDictionary[aioredis.Redis, tuple[float, float]] = weakref.WeakKeyDictionary()


async def since(r: aioredis.Redis, keys: Keys, *, max_age: float = 1.0) -> float:
    """When the current primary started serving the broker's data (epoch seconds)."""
    now = time.time()
    cached = _cache.get(r)
    if cached and now - cached[0] <= max_age:
        return cached[1]
    value = await _ask(r, keys, now)
    _cache[r] = (now, value)
    return value


async def _ask(r: aioredis.Redis, keys: Keys, now: float) -> float:
    try:
        info: dict[str, Any] = await r.info("server")
        started = now - float(info["uptime_in_seconds"]) - 1.0
    except (ResponseError, KeyError, ValueError):
        return 0.0
    try:
        repl: dict[str, Any] = await r.info("replication")
        promoted = int(repl.get("second_repl_offset", -1)) != -1 and repl.get("role") == "master"
        replid = str(repl["master_replid"])
    except (ResponseError, KeyError, ValueError):
        return started
    if not promoted:
        return started
    key = keys.primary_since(replid)
    await r.set(key, repr(now), nx=True)  # kept: one small key per failover
    seen: Any = await r.get(key)
    try:
        return max(started, float(seen.decode() if isinstance(seen, bytes) else seen))
    except (TypeError, ValueError):  # gone meanwhile, or not ours: count it from now
        return now
