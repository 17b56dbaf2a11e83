"""The mover: final jobs (COMPLETED, FAILED, CANCELED) whose final state is older than
``[history] retention`` leave Redis for the history database (broker/store/history.py), so that
Redis holds the jobs under way and the recent ones, not every job ever (Redis runs with
``noeviction``: without this it fills).

Safe against a crash at any point, in batches: the batch is first written to the database (an
upsert, committed), then deleted from Redis with everything that names it, by one script that
deletes a job only if its hash is still the one copied (the same digest of its fields). A crash
between the two leaves the job in both; the next run copies it again (the same row) and deletes
it. Readers look in Redis first and then in the database, and a job in both is shown once. Run
every ``[history] interval`` by the worker holding the archive lease (broker/worker.py)."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import cast

from broker.states import FINAL
from broker.store.history import HistoryDB, Row, row_from_hash
from broker.store.jobs import _LUA_FINAL, as_dict
from broker.tasks.runtime import Runtime

log = logging.getLogger("superfed.archive")

MAX_BATCHES = 40  # per run and state: a backlog is moved over a few runs, each one bounded

# ARGV: 1 the key namespace, then per job: its id and the digest of the hash copied (``digest``:
# SHA-1 over the sorted SHA-1s of its "field NUL value" pairs, an order Lua and Python agree on).
# Deletes the job's hash and its entries in every index, the active and backlog hashes of every
# site it was at (already gone for a final job; removed again in case), and the sweeper's note,
# and counts it (``metrics:history``); not its entry in a site's ``done`` set (the last minutes'
# throughput, which placement reads and which trims itself). Returns how many jobs it deleted.
_DELETE = """
local ns = ARGV[1]
local final = $FINAL
local n = 0
local function digest(job)
  local flat = redis.call('HGETALL', job)
  local pairs_ = {}
  for j = 1, #flat, 2 do pairs_[#pairs_ + 1] = redis.sha1hex(flat[j] .. '\0' .. flat[j + 1]) end
  table.sort(pairs_)
  return redis.sha1hex(table.concat(pairs_))
end
for i = 2, #ARGV, 2 do
  local id, copied = ARGV[i], ARGV[i + 1]
  local job = ns .. ':job:' .. id
  local h = redis.call('HMGET', job, 'state', 'project', 'site', 'attempts', 'placement')
  if h[1] and final[h[1]] and digest(job) == copied then
    redis.call('ZREM', ns .. ':jobs:all', id)
    redis.call('ZREM', ns .. ':jobs:project:' .. h[2], id)
    redis.call('ZREM', ns .. ':jobs:state:' .. h[1], id)
    local sites = {}
    if h[3] and h[3] ~= '' then sites[h[3]] = true end
    if h[4] and h[4] ~= '' then
      for _, a in ipairs(cjson.decode(h[4])) do
        if type(a) == 'table' and type(a.site) == 'string' then sites[a.site] = true end
      end
    end
    if h[5] and h[5] ~= '' then
      local p = cjson.decode(h[5])
      if type(p) == 'table' and type(p.site) == 'string' then sites[p.site] = true end
    end
    for s in pairs(sites) do
      redis.call('ZREM', ns .. ':jobs:site:' .. s, id)
      redis.call('HDEL', ns .. ':active:' .. s, id)
      redis.call('HDEL', ns .. ':assigned:' .. s, id)
    end
    redis.call('HDEL', ns .. ':sweep:suspects', id)
    redis.call('DEL', job)
    -- counted in the step that moves it (broker/metrics.py)
    redis.call('HINCRBY', ns .. ':metrics:history', h[1], 1)
    n = n + 1
  end
end
return n
""".replace("$FINAL", _LUA_FINAL)


def digest(h: dict[str, str]) -> str:
    """What _DELETE computes of a hash in Redis, of the hash as read (field and value as UTF-8)."""
    parts = sorted(hashlib.sha1(f"{k}\0{v}".encode(), usedforsecurity=False).hexdigest() for k, v in h.items())
    return hashlib.sha1("".join(parts).encode(), usedforsecurity=False).hexdigest()


class Mover:
    """What one worker keeps between runs: the database and the registered delete script."""

    def __init__(self, rt: Runtime, db: HistoryDB):
        self.rt = rt
        self.db = db
        self._delete = rt.redis.register_script(_DELETE)

    async def run(self) -> str:
        cfg = self.rt.settings.history
        cutoff = time.time() - cfg.retention_s
        moved = 0
        for state in sorted(FINAL):
            moved += await self._state(state, cutoff, cfg.batch)
        return f"{moved} final jobs moved to the history"

    async def _state(self, state: str, cutoff: float, batch: int) -> int:
        """Move the jobs in one final state that ended before ``cutoff``. The state's index is
        ordered by creation; a job ends after it is created, so only those created before the
        cutoff are read; those of them that ended later (long runs) are stepped over."""
        k = self.rt.keys
        r = self.rt.redis
        cutoff_us = int(cutoff * 1_000_000)
        moved = skipped = 0
        for _ in range(MAX_BATCHES):
            ids = cast(list[str], await r.zrangebyscore(k.jobs_by_state(state), "-inf", cutoff_us,
                                                        start=skipped, num=batch))
            if not ids:
                break
            async with r.pipeline(transaction=False) as p:
                for jid in ids:
                    p.hgetall(k.job(jid))
                hashes = [as_dict(h) for h in await p.execute()]
            rows: list[Row] = []
            fence: list[str] = []
            stale: list[str] = []
            for jid, h in zip(ids, hashes, strict=True):
                if not h:
                    stale.append(jid)  # an index entry whose job is gone (moved by another worker)
                    continue
                if h.get("state") != state:
                    skipped += 1
                    continue
                try:
                    row = row_from_hash(h)
                except Exception as exc:  # a record this code cannot read: kept in Redis, said once a run
                    log.warning("archive: %s stays in Redis: its record cannot be read (%s)", jid, exc)
                    skipped += 1
                    continue
                if row.finished_at >= cutoff:
                    skipped += 1
                    continue
                rows.append(row)
                fence += [jid, digest(h)]
            if stale:
                await r.zrem(k.jobs_by_state(state), *stale)
            if rows:
                # first the copy, committed; only then the delete (a crash between: in both)
                await self.db.upsert(rows, archived_at=time.time())
                deleted = int(await self._delete(args=[k.ns, *fence]))
                moved += deleted
                skipped += len(rows) - deleted  # changed since they were read: the next run copies them again
            if len(ids) < batch:
                break
        if moved:
            log.info("archive: %d %s jobs moved to the history", moved, state)
        return moved
