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
import json
import logging
import time
from typing import cast

from broker.states import FINAL
from broker.store.history import HistoryDB, Row, row_from_hash
from broker.store.jobs import _LUA_FINAL, as_dict
from broker.store.keys import Keys
from broker.tasks.runtime import Runtime

log = logging.getLogger("superfed.archive")

MAX_BATCHES = 40  # per run and state: a backlog is moved over a few runs, each one bounded

# Every key it touches is declared (a managed Redis or a cluster-aware proxy routes by KEYS):
# KEYS: 1 the sweeper's notes, 2 the moved-jobs counter (metrics:history), then per job its
# hash, the all, project and state indexes, and for each site the job was at (its site, its
# attempts', its placement's) that site's index, active and backlog hashes. ARGV: per job its
# id, the digest of the hash copied (``digest``: SHA-1 over the sorted SHA-1s of its "field NUL
# value" pairs, an order Lua and Python agree on) and how many sites it names. The keys are
# made from the hash as read (``delete_keys``); the digest proves the hash is still that one.
# A job is deleted only if it is final and unchanged; its entry in a site's ``done`` set (the
# last minutes' throughput, which placement reads, trimming itself) stays. Returns how many
# jobs it deleted.
_DELETE = """
local final = $FINAL
local n = 0
local function digest(job)
  local flat = redis.call('HGETALL', job)
  local pairs_ = {}
  for j = 1, #flat, 2 do pairs_[#pairs_ + 1] = redis.sha1hex(flat[j] .. '\0' .. flat[j + 1]) end
  table.sort(pairs_)
  return redis.sha1hex(table.concat(pairs_))
end
local k = 3
for i = 1, #ARGV, 3 do
  local id, copied, nsites = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local job = KEYS[k]
  local all = KEYS[k + 1]
  local project = KEYS[k + 2]
  local state = KEYS[k + 3]
  local cur = redis.call('HGET', job, 'state')
  if cur and final[cur] and digest(job) == copied then
    redis.call('ZREM', all, id)
    redis.call('ZREM', project, id)
    redis.call('ZREM', state, id)
    for j = 0, nsites - 1 do
      local at = k + 4 + 3 * j
      redis.call('ZREM', KEYS[at], id)
      redis.call('HDEL', KEYS[at + 1], id)
      redis.call('HDEL', KEYS[at + 2], id)
    end
    redis.call('HDEL', KEYS[1], id)
    redis.call('DEL', job)
    -- counted in the step that moves it (broker/metrics.py)
    redis.call('HINCRBY', KEYS[2], cur, 1)
    n = n + 1
  end
  k = k + 4 + 3 * nsites
end
return n
""".replace("$FINAL", _LUA_FINAL)


def sites_of(h: dict[str, str]) -> list[str]:
    """Every site a job's record names: where it is, where it was tried, where it was placed."""
    found = {h["site"]} if h.get("site") else set()
    for field in ("attempts", "placement"):
        raw = h.get(field)
        if not raw or raw == "{}":
            continue
        value = json.loads(raw)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("site"), str):
                found.add(item["site"])
    return sorted(found)


def delete_keys(keys: Keys, jid: str, h: dict[str, str]) -> tuple[list[str], int]:
    """_DELETE's keys for one job, from its hash as read, and how many sites they name."""
    sites = sites_of(h)
    out = [keys.job(jid), keys.jobs_all, keys.jobs_by_project(h["project"]), keys.jobs_by_state(h["state"])]
    for s in sites:
        out += [keys.jobs_by_site(s), keys.active(s), keys.assigned(s)]
    return out, len(sites)


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
            fence_keys: list[str] = [k.sweep_suspects, k.metrics("history")]
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
                job_keys, nsites = delete_keys(k, jid, h)
                fence_keys += job_keys
                fence += [jid, digest(h), str(nsites)]
            if stale:
                await r.zrem(k.jobs_by_state(state), *stale)
            if rows:
                # first the copy, committed; only then the delete (a crash between: in both)
                await self.db.upsert(rows, archived_at=time.time())
                deleted = int(await self._delete(keys=fence_keys, args=fence))
                moved += deleted
                skipped += len(rows) - deleted  # changed since they were read: the next run copies them again
            if len(ids) < batch:
                break
        if moved:
            log.info("archive: %d %s jobs moved to the history", moved, state)
        return moved
