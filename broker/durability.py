"""What a 202 promises about a job's survival (``[durability] level``), and how intake keeps it.

- ``default``: the job is in the primary's memory and its AOF as Redis writes it
  (``appendfsync everysec`` in deploy/redis.conf); README, Reliability, says what that survives.
- ``replica``: after the write, intake asks Redis to ``WAIT`` until at least ``replicas``
  replicas acknowledge it (``timeout`` seconds at most). Fewer in time: the answer is a 503
  naming the job (it is written on the primary and queued; nothing is undone: a replica may
  have it already, a worker may have taken it), with Retry-After; the same request again
  (same idempotency key) waits again and answers 202 once replicas have it.
- ``disk``: the write is on the primary's disk before the answer. Redis 7.0 (Debian's) has no
  ``WAITAOF`` (7.2+), so the server must run ``appendonly yes`` with ``appendfsync always``
  (Redis then fsyncs the AOF before it sends any reply): the API checks it at start and refuses
  to start otherwise, and intake checks again at most every ``RECHECK`` seconds, refusing jobs
  (503) while the server says otherwise. One mechanism for every server version, checked here;
  WAITAOF would let the server keep ``everysec`` for everyone else, at the price of a wait per
  intake and a path this project cannot test on the Redis it ships with.

The WAIT goes on a connection of its own (not the process' shared pipeline, which it would
hold up): a write (INCR of one counter, so that WAIT has an offset of this connection's to
wait for, past every write made before it on any connection) then WAIT. Concurrent intakes
share it: their pairs go out together, the first WAIT waits, the others find the offset acked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from broker.config import DurabilityConfig
from broker.store.autopipe import AutoPipeline
from broker.store.keys import Keys

RECHECK = 30.0  # seconds between checks of the server's fsync policy (level "disk")


class DurabilityError(RuntimeError):
    """The Redis server cannot keep the configured promise (level ``disk``)."""


@dataclass
class Unconfirmed(Exception):
    """Fewer replicas than required acknowledged the write in time."""

    acked: int
    wanted: int
    timeout: float

    def why(self) -> str:
        return (f"only {self.acked} of the {self.wanted} Redis replica(s) [durability] requires confirmed it "
                f"within {self.timeout:g} s")


def fsync_problem(config: dict[str, Any]) -> str | None:
    """Why a server with this CONFIG GET answer does not put a write on disk before its reply."""
    aof, fsync = config.get("appendonly"), config.get("appendfsync")
    if aof != "yes":
        return f"Redis runs without its append-only file (appendonly {aof or '?'})"
    if fsync != "always":
        return f"Redis fsyncs its append-only file {fsync or '?'} (not always)"
    return None


class Durability:
    """The intake side of ``[durability]``: ``ensure`` before a write, ``confirm`` after it."""

    def __init__(self, r: aioredis.Redis, keys: Keys, cfg: DurabilityConfig):
        self.cfg = cfg
        self.keys = keys
        self.r = r
        self._pipe = AutoPipeline(r)  # its own: a WAIT must not hold up the shared pipeline
        self._checked_at = float("-inf")

    async def server_problem(self) -> str | None:
        """For level ``disk``: why the server does not keep the promise (None: it does)."""
        try:
            reply = await self.r.execute_command("CONFIG", "GET", "append*")
        except ResponseError as exc:
            return (f"the broker may not read Redis's persistence settings (CONFIG GET: {exc}); grant its ACL "
                    "user +config|get (deploy/redis.conf)")
        config = reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))
        return fsync_problem(config)

    async def ensure(self) -> None:
        """Level ``disk``: raise DurabilityError when the server does not fsync before replying
        (asked at most every RECHECK seconds)."""
        if self.cfg.level != "disk" or time.monotonic() - self._checked_at < RECHECK:
            return
        problem = await self.server_problem()
        if problem:
            raise DurabilityError(f"{problem}; [durability] level = \"disk\" needs appendonly yes and "
                                  "appendfsync always")
        self._checked_at = time.monotonic()

    async def confirm(self) -> None:
        """Level ``replica``: wait until enough replicas have every write made so far; raise
        Unconfirmed when they do not in time."""
        if self.cfg.level != "replica":
            return
        _mark, acked = await self._pipe.many([
            ("INCR", self.keys.durability_mark),
            ("WAIT", self.cfg.replicas, int(self.cfg.timeout * 1000)),
        ])
        if int(acked) < self.cfg.replicas:
            raise Unconfirmed(int(acked), self.cfg.replicas, self.cfg.timeout)
