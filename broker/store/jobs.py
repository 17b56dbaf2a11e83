"""Job records in Redis: one hash per job, sorted-set indexes, atomic state changes.

A job is a hash (``Keys.job``) whose list-valued fields (history, attempts, placement, spec)
are JSON.  Indexes are sorted sets scored by creation time in microseconds: all jobs, by
project, by state, by site.  Every state change goes through one Lua script that makes only
the moves ``broker.states.ALLOWED`` allows (the table is rendered into the script when this
module loads: one state machine, not two), and keeps the indexes, the site's active set and
its backlog in step with the record.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis

from adapters.psij import JobSpec
from broker import logs
from broker.schemas import Attempt, HistoryEntry, Job, JobCreate, PlacementHints, PlacementRecord
from broker.states import ALLOWED, FINAL, JobState
from broker.store.autopipe import shared
from broker.store.keys import Keys


def _lua_set(states: Iterable[str]) -> str:
    """A Lua table used as a set: ``{ACTIVE=true, HELD=true}`` (sorted: the script's SHA is stable)."""
    names = sorted(states)
    bad = [n for n in names if not re.fullmatch(r"[A-Z][A-Z_]*", n)]
    if bad:  # a state name is written into Lua source: only plain identifiers may go there
        raise ValueError(f"not a state name for Lua: {bad}")
    return "{" + ", ".join(f"{n}=true" for n in names) + "}"


# states.ALLOWED as Lua: from -> set of the states it may move to
_LUA_MOVES = "{" + ", ".join(f"{cur.value}={_lua_set(nxt)}" for cur, nxt in ALLOWED.items()) + "}"
_LUA_FINAL = _lua_set(FINAL)
# the state indexes' places in _ADVANCE's KEYS (after its eight fixed keys)
STATE_ORDER = sorted(s.value for s in JobState)
_LUA_STATE_INDEX = "{" + ", ".join(f"{n}={9 + i}" for i, n in enumerate(STATE_ORDER)) + "}"

# Every key the script touches is in KEYS (tests/unit/test_lua_keys.py): a managed Redis or a
# cluster-aware proxy routes a script by its KEYS. The site's keys are those of the site the
# caller declares (ARGV[1]); a call that would touch another site's (the job's own, read here)
# writes nothing and answers {'site', <its site>}, and JobStore asks again with it.
# KEYS: 1 job, 2 placements counter, 3 attempts counter, 4 jobs-by-state-and-site counter,
# 5 active:<site>, 6 jobs:site:<site>, 7 assigned:<site>, 8 done:<site>, then the state
# indexes (jobs:state:<state>) in STATE_ORDER.
# ARGV: 1 the declared site ('' none), 2 job id, 3 new state, 4 now, 5 fields (JSON), 6 attempt
# (JSON), 7 detail, 8 now (ISO), 9 '1' to also answer the cancel flag
_ADVANCE = """
local job = KEYS[1]
local declared, id, new, now, fields, attempt, detail, now_iso =
  ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local cur = redis.call('HGET', job, 'state')
if not cur then return -1 end
local moves = $MOVES
local final = $FINAL
local sidx = $STATE_INDEX
if final[cur] then return 0 end
local created = tonumber(redis.call('HGET', job, 'created_us'))
local site0 = redis.call('HGET', job, 'site') or ''
local site1 = site0
local f = nil
if fields ~= '' then
  f = cjson.decode(fields)
  if type(f.site) == 'string' then site1 = f.site elseif f.site == cjson.null then site1 = '' end
end
local held = f and f.native_id and f.native_id ~= cjson.null and type(f.site) == 'string'
local ends = moves[cur] and moves[cur][new] and final[new]
if (held or ends) and site1 ~= '' and site1 ~= declared then return {'site', site1} end
if f then
  if type(f.placement) == 'string' then
    -- a decision that placed the job nowhere (one that chose a site is counted by _BEGIN_TRY)
    local p = cjson.decode(f.placement)
    if p.site == cjson.null or p.site == nil then
      redis.call('HINCRBY', KEYS[2], 'none\tno eligible site', 1)
    end
  end
  for k, v in pairs(f) do
    if v == cjson.null then redis.call('HDEL', job, k) else redis.call('HSET', job, k, tostring(v)) end
  end
  if held then
    redis.call('HSET', KEYS[5], id, cjson.encode({system = f.system or '', native_id = f.native_id}))
    redis.call('ZADD', KEYS[6], created, id)
  end
end
if attempt ~= '' then
  local a = cjson.decode(redis.call('HGET', job, 'attempts') or '[]')
  local at = cjson.decode(attempt)
  table.insert(a, at)
  -- counted in the step that records it, so the count never disagrees with the job (metrics.py)
  redis.call('HINCRBY', KEYS[3], at.site .. '\t' .. at.outcome, 1)
  redis.call('HSET', job, 'attempts', cjson.encode(a))
end
local changed = 0
if moves[cur] and moves[cur][new] then
  redis.call('HSET', job, 'state', new)
  local h = cjson.decode(redis.call('HGET', job, 'history') or '[]')
  local e = {state = new, at = now_iso}
  if detail ~= '' then e.detail = detail end
  table.insert(h, e)
  redis.call('HSET', job, 'history', cjson.encode(h))
  redis.call('ZREM', KEYS[sidx[cur]], id)
  redis.call('ZADD', KEYS[sidx[new]], created, id)
  changed = 1
  if final[new] and site1 ~= '' then
    redis.call('HDEL', KEYS[5], id)
    redis.call('HDEL', KEYS[7], id)
    redis.call('ZADD', KEYS[8], now, id)
  end
end
-- jobs out of NEW by state and site (NEW itself is the state index's ZCARD): moved with the job
local now_state = changed == 1 and new or cur
if now_state ~= cur or site1 ~= site0 then
  if cur ~= 'NEW' then redis.call('HINCRBY', KEYS[4], cur .. '\t' .. site0, -1) end
  if now_state ~= 'NEW' then redis.call('HINCRBY', KEYS[4], now_state .. '\t' .. site1, 1) end
end
redis.call('HSET', job, 'updated', now)
if ARGV[9] == '1' then
  -- the caller also wants to know whether a cancel was asked for (saves a re-read)
  return {changed, redis.call('HGET', job, 'cancel_requested') or ''}
end
return changed
""".replace("$MOVES", _LUA_MOVES).replace("$FINAL", _LUA_FINAL).replace("$STATE_INDEX", _LUA_STATE_INDEX)

# A try at a site begins: the placement record (if given; refused for a final job, as by
# _ADVANCE), the site's claim on the job (its backlog) and the inflight mark, in one step; but
# only for the worker whose claim holds the job (broker/worker.py), so a worker that lost the
# job to a takeover cannot send it too. Returns 1, or 0 when the claim is another worker's.
# KEYS: 1 job, 2 the site's assigned hash, 3 the claims hash, 4 the placements counter.
# ARGV: 1 job id, 2 now, 3 the inflight mark (JSON), 4 placement, 5 the RQ job id, 6 the
# worker ('' = not under a worker)
_BEGIN_TRY = """
local job = KEYS[1]
if ARGV[6] ~= '' and redis.call('HGET', KEYS[3], ARGV[5]) ~= ARGV[6] then return 0 end
if ARGV[4] ~= '' then
  local cur = redis.call('HGET', job, 'state')
  local final = $FINAL
  if cur and not final[cur] then
    redis.call('HSET', job, 'placement', ARGV[4], 'updated', ARGV[2])
    -- a placement decision that chose a site, counted where it is recorded (metrics.py)
    local p = cjson.decode(ARGV[4])
    redis.call('HINCRBY', KEYS[4], tostring(p.site) .. '\t' .. tostring(p.strategy), 1)
  end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', job, 'inflight', ARGV[3])
return 1
""".replace("$FINAL", _LUA_FINAL)


_last_iso: tuple[float, str] = (float("nan"), "")


def now_iso(ts: float | None = None) -> str:
    global _last_iso
    t = time.time() if ts is None else ts
    last = _last_iso
    if last[0] == t:  # a batch's jobs share their time: formatted once
        return last[1]
    text = datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    _last_iso = (t, text)
    return text


def new_job_id() -> str:
    return new_job_ids(1)[0]


def new_job_ids(n: int) -> list[str]:
    """``n`` job ids: a time-ordered prefix (sortable, readable) and a random suffix
    (unguessable), the random parts drawn in one read."""
    prefix = f"j{int(time.time() * 1000):x}"
    rnd = secrets.token_hex(5 * n)
    return [prefix + rnd[10 * i : 10 * i + 10] for i in range(n)]


_enc = msgspec.json.Encoder()
SITE_MEMORY = 100_000  # jobs whose site a JobStore remembers (~100 bytes each)


# The fields of a new job's record that differ between jobs accepted at the same moment by
# the same caller (a batch): the rest are written once in a batch's template
PER_JOB_FIELDS = ("id", "project", "name", "spec", "hints")  # the id first: a batch sends it once


def per_job_fields(job_id: str, project: str, spec: JobSpec, hints: Any) -> tuple[str, str, str, str, str]:
    """The values of ``PER_JOB_FIELDS``, in that order."""
    return (job_id, project, spec.name or "", _enc.encode(spec).decode(),
            _enc.encode(hints).decode() if hints is not None else "")


def initial_fields(job_id: str, project: str, spec: JobSpec, hints: Any, owner: str, now: float) -> dict[str, str]:
    at = now_iso(now)
    _id, _project, name, spec_json, hints_json = per_job_fields(job_id, project, spec, hints)
    return {
        "id": job_id,
        "project": project,
        "name": name,
        "state": JobState.NEW.value,
        "created": repr(now),
        "created_us": str(int(now * 1_000_000)),
        "updated": repr(now),
        "spec": spec_json,
        "hints": hints_json,
        "history": _enc.encode([HistoryEntry(state=JobState.NEW.value, at=at)]).decode(),
        "attempts": "[]",
        "owner": owner,
    }


def initial_job(job_id: str, body: JobCreate, owner: str, fields: dict[str, str]) -> Job:
    """The 202's body for a job just accepted, from the values its record was written from
    (``body``: the JobCreate), without decoding that record again."""
    at = now_iso(float(fields["created"]))
    return Job(
        id=job_id, project=body.project, name=body.spec.name or None, state=JobState.NEW.value, site=None, system=None,
        native_id=None, native_state=None, exit_code=None, message=None, created_at=at, updated_at=at,
        placement=None, attempts=[], history=[HistoryEntry(state=JobState.NEW.value, at=at)], spec=body.spec,
    )


def index_writes(keys: Keys, fields: dict[str, str]) -> list[tuple[str, float, str]]:
    score = float(fields["created_us"])
    jid = fields["id"]
    return [
        (keys.jobs_all, score, jid),
        (keys.jobs_by_project(fields["project"]), score, jid),
        (keys.jobs_by_state(JobState.NEW.value), score, jid),
    ]


_spec_dec = msgspec.json.Decoder(JobSpec)
_place_dec = msgspec.json.Decoder(PlacementRecord)
_attempts_dec = msgspec.json.Decoder(list[Attempt])
_history_dec = msgspec.json.Decoder(list[HistoryEntry])


def _opt(h: dict[str, str], key: str) -> str | None:
    v = h.get(key)
    return v if v else None


def job_from_hash(h: dict[str, str]) -> Job:
    exit_code = h.get("exit_code")
    attempts = h.get("attempts") or "[]"
    return Job(
        id=h["id"],
        project=h["project"],
        name=_opt(h, "name"),
        state=h["state"],
        site=_opt(h, "site"),
        system=_opt(h, "system"),
        native_id=_opt(h, "native_id"),
        native_state=_opt(h, "native_state"),
        exit_code=int(exit_code) if exit_code not in (None, "") else None,
        message=_opt(h, "message"),
        created_at=now_iso(float(h["created"])),
        updated_at=now_iso(float(h["updated"])),
        placement=_place_dec.decode(h["placement"]) if h.get("placement") else None,
        # cjson writes an empty list as {}
        attempts=_attempts_dec.decode(attempts) if attempts not in ("{}", "") else [],
        history=_history_dec.decode(h["history"]) if h.get("history") not in (None, "", "{}") else [],
        spec=_spec_dec.decode(h["spec"]),
        cancel_requested=h.get("cancel_requested") == "1",
    )


class Inflight(msgspec.Struct):
    """A try that may have reached a facility: where, and since when (unix s)."""

    site: str
    system: str
    at: float


class ActiveJob(msgspec.Struct):
    """A job the broker follows at a site."""

    system: str
    native_id: str


class JobRecord(msgspec.Struct, frozen=True):
    """What a task reads of a job, decoded from its hash once per run."""

    id: str
    project: str
    state: str
    created: float
    spec: JobSpec
    hints: PlacementHints | None
    inflight: Inflight | None
    cancel_requested: bool
    site: str | None
    system: str | None
    native_id: str | None
    attempts: str = "[]"  # as stored (JSON); decoded by the one task that reads it (submit)

    def refused(self) -> dict[str, str]:
        """Sites that refused this job in earlier tries, with their words."""
        return self._sites_with("rejected")

    def abandoned(self) -> dict[str, str]:
        """Sites where a try was given up unconfirmed: a second try there could make a second
        job, so placement avoids them while another site can take the job."""
        return self._sites_with("abandoned")

    def _sites_with(self, outcome: str) -> dict[str, str]:
        text = self.attempts if self.attempts not in ("", "{}") else "[]"  # cjson writes [] as {}
        return {a.site: a.error or outcome for a in _attempts_dec.decode(text) if a.outcome == outcome}


_hints_dec = msgspec.json.Decoder(PlacementHints)
_inflight_dec = msgspec.json.Decoder(Inflight)
_active_dec = msgspec.json.Decoder(ActiveJob)


def _inflight(h: dict[str, str]) -> Inflight | None:
    raw = h.get("inflight")
    if not raw:
        return None
    if raw.startswith("{"):
        return _inflight_dec.decode(raw)
    site, _, system = raw.partition("|")  # written by a broker before this one
    return Inflight(site=site, system=system, at=float(h.get("inflight_at") or 0))


def record_from_hash(h: dict[str, str]) -> JobRecord:
    return JobRecord(
        id=h["id"],
        project=h["project"],
        state=h["state"],
        created=float(h["created"]),
        spec=_spec_dec.decode(h["spec"]),
        hints=_hints_dec.decode(h["hints"]) if h.get("hints") else None,
        inflight=_inflight(h),
        cancel_requested=h.get("cancel_requested") == "1",
        site=_opt(h, "site"),
        system=_opt(h, "system"),
        native_id=_opt(h, "native_id"),
        attempts=h.get("attempts") or "[]",
    )


def as_dict(reply: Any) -> dict[str, str]:
    """An HGETALL reply as read off the wire: a map (RESP3) or a flat list (RESP2)."""
    if isinstance(reply, dict):
        return reply
    it = iter(reply or ())
    return dict(zip(it, it, strict=True))


def encode_cursor(score: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{int(score)}:{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Raises ValueError on a cursor this API did not make."""
    pad = "=" * (-len(cursor) % 4)
    raw = base64.urlsafe_b64decode(cursor + pad).decode()
    score, _, job_id = raw.partition(":")
    if not job_id:
        raise ValueError("bad cursor")
    return int(score), job_id


class JobStore:
    """Async access to job records (the API's reads, the workers' updates)."""

    def __init__(self, r: aioredis.Redis, keys: Keys):
        self.r = r
        self.keys = keys
        # the reads and state changes of concurrent tasks (a worker runs several submissions
        # at once; the API many requests) share round trips (autopipe.py)
        self._pipe = shared(r)
        self._advance = self._pipe.script(_ADVANCE)
        self._begin_try = self._pipe.script(_BEGIN_TRY)
        # _ADVANCE's keys that name no job and no site, made once
        self._fixed = [keys.metrics("placements"), keys.metrics("attempts"), keys.metrics("jobs")]
        self._states = [keys.jobs_by_state(st) for st in STATE_ORDER]
        # job id -> the site its record names, as last seen (bounded): the site whose keys a
        # job's next _ADVANCE declares, so that it needs no second try
        self._sites: dict[str, str] = {}
        self._site_keys: dict[str, list[str]] = {}  # site -> its four keys in _ADVANCE's KEYS

    def _saw_site(self, job_id: str, site: str | None) -> None:
        if not site:
            return
        if len(self._sites) >= SITE_MEMORY and job_id not in self._sites:
            del self._sites[next(iter(self._sites))]  # the oldest
        self._sites[job_id] = site

    async def get_hash(self, job_id: str) -> dict[str, str] | None:
        h = as_dict(await self._pipe.execute("HGETALL", self.keys.job(job_id)))  # decode_responses=True
        if h:
            self._saw_site(job_id, h.get("site"))
        return h or None

    async def record(self, job_id: str) -> JobRecord | None:
        """The job as the tasks read it (one HGETALL, decoded once)."""
        h = await self.get_hash(job_id)
        return record_from_hash(h) if h else None

    async def get(self, job_id: str) -> Job | None:
        h = await self.get_hash(job_id)
        return job_from_hash(h) if h else None

    async def advance(
        self,
        job_id: str,
        state: str | None = None,
        *,
        fields: dict[str, Any] | None = None,
        attempt: Attempt | None = None,
        detail: str | None = None,
        site: str | None = None,
    ) -> int:
        """Atomically update fields, append an attempt, and move the state if ``states.ALLOWED``
        allows it. Returns 1 if the state changed, 0 if not (a refused move, or the job is final:
        then nothing is written), -1 if no such job. ``site``: the site the caller knows the job
        is at (saves a second try when this store has not seen the job's record)."""
        return int(await self._run_advance(job_id, state, fields, attempt, detail, False, site))

    async def advance_and_cancel_flag(
        self,
        job_id: str,
        state: str | None = None,
        *,
        fields: dict[str, Any] | None = None,
        attempt: Attempt | None = None,
    ) -> tuple[int, bool]:
        """``advance``, and whether a cancel has been asked for, read in the same atomic step."""
        reply = await self._run_advance(job_id, state, fields, attempt, None, True)
        if not isinstance(reply, list):  # no such job (-1)
            return int(reply), False
        return int(reply[0]), reply[1] == "1"

    async def _run_advance(
        self,
        job_id: str,
        state: str | None,
        fields: dict[str, Any] | None,
        attempt: Attempt | None,
        detail: str | None,
        cancel_flag: bool,
        site: str | None = None,
    ) -> Any:
        now = time.time()
        given = fields.get("site") if fields else None
        declared = given if isinstance(given, str) else site or self._sites.get(job_id, "")
        k = self.keys
        args = [job_id, state or "", repr(now), _enc.encode(fields).decode() if fields else "",
                _enc.encode(attempt).decode() if attempt else "", detail or "", now_iso(now),
                "1" if cancel_flag else ""]
        for _ in range(3):
            site_keys = self._site_keys.get(declared)
            if site_keys is None:
                site_keys = [k.active(declared), k.jobs_by_site(declared), k.assigned(declared), k.done(declared)]
                if len(self._site_keys) < 1000:  # sites are few; a bound all the same
                    self._site_keys[declared] = site_keys
            reply = await self._pipe.evalsha(self._advance, [k.job(job_id), *self._fixed, *site_keys, *self._states],
                                             [declared, *args])
            if isinstance(reply, list) and reply and reply[0] == "site":
                declared = str(reply[1])  # the job is at another site than declared: nothing was written
                self._saw_site(job_id, declared)
                continue
            if isinstance(given, str):
                self._saw_site(job_id, given)
            return reply
        raise RuntimeError(f"{job_id}: its site kept changing under _ADVANCE")

    async def begin_try(
        self, job_id: str, site: str, system: str, *, placement: str | None = None, rq_id: str = "", runner: str = ""
    ) -> bool:
        """The site's claim (backlog), the inflight mark and, first time, the placement record;
        False (nothing written) when ``runner`` is not the worker whose claim holds ``rq_id``."""
        now = time.time()
        logs.bind(site=site)  # the task's lines from here on name the site it tries (broker/logs.py)
        return bool(
            await self._pipe.evalsha(
                self._begin_try,
                [self.keys.job(job_id), self.keys.assigned(site), self.keys.claims, self.keys.metrics("placements")],
                [job_id, repr(now), _enc.encode(Inflight(site, system, now)).decode(), placement or "", rq_id, runner],
            )
        )

    async def set_fields(self, job_id: str, **fields: str) -> None:
        mapping: dict[Any, Any] = fields  # redis-py's stubs want a wider key type
        await self.r.hset(self.keys.job(job_id), mapping=mapping)

    async def page_rows(
        self,
        *,
        projects: Sequence[str] | None,
        state: str | None,
        site: str | None,
        limit: int,
        after: tuple[int, str] | None,
    ) -> tuple[list[tuple[int, str, Job]], bool]:
        """Up to ``limit`` jobs as (created_us, id, job), newest first (then by id, descending),
        strictly after the cursor ``after`` (``decode_cursor``); and whether more follow.
        ``projects`` None means every project."""
        k = self.keys
        if site:
            index = k.jobs_by_site(site)
        elif state:
            index = k.jobs_by_state(state)
        elif projects is not None and len(projects) == 1:
            index = k.jobs_by_project(projects[0])
        else:
            index = k.jobs_all
        allowed = set(projects) if projects is not None else None
        max_score = str(after[0]) if after else "+inf"
        out: list[tuple[int, str, Job]] = []
        batch = max(limit * 2, 50)
        offset = 0
        while len(out) <= limit:
            rows = cast(
                list[tuple[str, float]],
                await self.r.zrevrangebyscore(index, max_score, "-inf", start=offset, num=batch, withscores=True),
            )
            if not rows:
                break
            offset += len(rows)
            rows = [(jid, s) for jid, s in rows if not (after and int(s) == after[0] and jid >= after[1])]
            async with self.r.pipeline(transaction=False) as p:
                for jid, _ in rows:
                    p.hgetall(k.job(jid))
                hashes = await p.execute()
            for (jid, score), h in zip(rows, hashes, strict=True):
                if not h:
                    continue
                if allowed is not None and h["project"] not in allowed:
                    continue
                if state and h["state"] != state:
                    continue
                if site and h.get("site") != site:
                    continue
                if len(out) == limit:
                    return out, True
                out.append((int(score), jid, job_from_hash(h)))
            if len(rows) < batch and offset >= await self.r.zcard(index):
                break
        return out, False

    async def active(self, site: str) -> dict[str, ActiveJob]:
        """job id -> system and native id of the broker's unfinished jobs at ``site``."""
        raw = cast(dict[str, str], await self.r.hgetall(self.keys.active(site)))
        out: dict[str, ActiveJob] = {}
        for jid, val in raw.items():
            if val.startswith("{"):
                out[jid] = _active_dec.decode(val)
            else:  # written by a broker before this one
                system, _, native = val.partition("|")
                out[jid] = ActiveJob(system=system, native_id=native)
        return out

    async def claim(self, site: str, job_id: str) -> None:
        await self.r.hset(self.keys.assigned(site), job_id, repr(time.time()))

    async def release(self, site: str, job_id: str) -> None:
        await self.r.hdel(self.keys.assigned(site), job_id)

    async def backlogs(self, sites: Iterable[str]) -> dict[str, int]:
        names = list(sites)
        async with self.r.pipeline(transaction=False) as p:
            for s in names:
                p.hlen(self.keys.assigned(s))
            counts = await p.execute()
        return dict(zip(names, (int(c) for c in counts), strict=True))

    async def throughputs(self, sites: Iterable[str], window: float = 300.0) -> dict[str, float]:
        """Jobs finished per minute over the last ``window`` seconds, per site."""
        names = list(sites)
        now = time.time()
        async with self.r.pipeline(transaction=False) as p:
            for s in names:
                p.zremrangebyscore(self.keys.done(s), "-inf", now - window)
                p.zcard(self.keys.done(s))
            res = await p.execute()
        return {s: int(res[2 * i + 1]) * 60.0 / window for i, s in enumerate(names)}
