"""Tries given up without the facility confirming it holds no job: watched for a late copy.

A facility that answers a submission too late (or not at all) may still create the job after
the broker has placed it elsewhere. Slurm's federation keeps sibling jobs and revokes the ones
that lose; here the try that was given up is watched at its facility for a while, and a copy
that shows up there is canceled at once and recorded on the job (broker/tasks/late_copies.py).
"""

from __future__ import annotations

import time
from typing import cast

import msgspec
import redis.asyncio as aioredis

from broker.schemas import Attempt
from broker.store.keys import Keys

# how long a given-up try is watched: a facility that creates a job an hour after its request
# is beyond anything seen; one that does within it is caught
WATCH_FOR = 3600.0


class Watch(msgspec.Struct):
    system: str
    since: float  # when the try was given up (unix s)
    until: float  # when watching stops


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Watch)

# Append an attempt to a job whatever its state (a late copy is canceled after the job may have
# ended; _ADVANCE writes nothing to a final job) and count it as _ADVANCE counts attempts.
# KEYS: 1 the job, 2 the attempts counter (metrics.py). ARGV: 1 the attempt (JSON), 2 its
# counter field. Returns 0 when the job is gone.
_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local a = cjson.decode(redis.call('HGET', KEYS[1], 'attempts') or '[]')
table.insert(a, cjson.decode(ARGV[1]))
redis.call('HSET', KEYS[1], 'attempts', cjson.encode(a))
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
return 1
"""


class LateCopies:
    def __init__(self, r: aioredis.Redis, keys: Keys):
        self.r = r
        self.keys = keys
        self._record = r.register_script(_RECORD)

    async def watch(self, site: str, job_id: str, system: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        await self.r.hset(self.keys.watched(site), job_id, _enc.encode(Watch(system, now, now + WATCH_FOR)))

    async def watched(self, site: str) -> dict[str, Watch]:
        raw = cast(dict[str, str], await self.r.hgetall(self.keys.watched(site)))  # decode_responses=True
        return {job_id: _dec.decode(v) for job_id, v in raw.items()}

    async def forget(self, site: str, job_id: str) -> None:
        await self.r.hdel(self.keys.watched(site), job_id)

    async def record(self, job_id: str, attempt: Attempt) -> bool:
        """Add ``attempt`` to the job's attempts, whatever the job's state."""
        done = await self._record(
            keys=[self.keys.job(job_id), self.keys.metrics("attempts")],
            args=[_enc.encode(attempt), f"{attempt.site}\t{attempt.outcome}"],
        )
        return bool(done)
