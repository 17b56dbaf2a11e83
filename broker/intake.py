"""Accepting a job: checks, idempotency, and one atomic write of the record, its indexes,
its RQ submission and its idempotency answer (a 202 always means a job that will be worked on)."""

from __future__ import annotations

import hashlib
import time
import zlib
from typing import Any, cast

import msgspec
import redis
import redis.asyncio as aioredis

from broker import queues
from broker.config import Settings
from broker.schemas import Job, JobCreate
from broker.store.autopipe import shared
from broker.store.jobs import (
    PER_JOB_FIELDS,
    index_writes,
    initial_fields,
    initial_job,
    new_job_id,
    new_job_ids,
    per_job_fields,
)
from broker.store.keys import Keys

_enc = msgspec.json.Encoder()


class IdemState(msgspec.Struct):
    fp: str
    state: str  # "done" (older entries may read "pending")
    job_id: str | None = None
    body: str | None = None  # the first answer, as sent


def fingerprint(body: JobCreate) -> str:
    return hashlib.sha256(_enc.encode(body)).hexdigest()


class Replay(Exception):
    """The Idempotency-Key already has an answer (``raw``: the stored IdemState)."""

    def __init__(self, raw: bytes | str):  # as the client gives it: msgspec decodes either
        super().__init__("idempotency key already answered")
        self.raw = raw


def create_job_sync(
    conn: redis.Redis,
    keys: Keys,
    settings: Settings,
    body: JobCreate,
    owner: str,
    idem_key: str | None = None,
    fp: str | None = None,
) -> Job:
    """Write the job and enqueue its submission in one MULTI/EXEC (runs in a thread: RQ's
    enqueue is synchronous).

    With an Idempotency-Key the key is WATCHed: the job, its submission and the key's answer
    are written together or not at all, so an API process killed at any point leaves no
    half-claimed key behind (a retry just runs again), and of two concurrent requests with one
    key the second's EXEC fails and it replays the first's answer (raises ``Replay``)."""
    job_id = new_job_id()
    now = time.time()
    fields = initial_fields(job_id, body.project, body.spec, body.placement, owner, now)
    job = initial_job(job_id, body, owner, fields)
    with conn.pipeline(transaction=True) as p:
        if idem_key:
            p.watch(idem_key)
            prev = p.get(idem_key)
            if prev is not None:
                raise Replay(prev)
        p.multi()
        p.hset(keys.job(job_id), mapping=cast(dict[Any, Any], fields))  # redis-py's stubs want wider keys
        for key, score, member in index_writes(keys, fields):
            p.zadd(key, {member: score})
        queues.enqueue_submit(
            conn, job_id, retries=settings.worker.submit_retries, timeout=settings.worker.job_timeout, pipeline=p
        )
        if idem_key:
            state = IdemState(fp=fp or "", state="done", job_id=job_id, body=_enc.encode(job).decode())
            p.set(idem_key, _enc.encode(state), ex=settings.api.idempotency_ttl)
        try:
            p.execute()
        except redis.WatchError:
            prev = conn.get(idem_key) if idem_key else None
            if prev is None:  # written and expired at once: cannot happen with a TTL >= 60 s
                raise
            raise Replay(prev) from None
    return job


def rq_submit_commands(conn: redis.Redis, job_id: str, settings: Settings) -> list[tuple[Any, ...]]:
    """The commands RQ's own enqueue sends for this job's submission, recorded rather than
    sent: RQ builds the job into a transaction pipeline that is never executed (no I/O; RQ
    reads the server version once per connection and caches it), and its command stack is
    taken as it is. The caller replays them in its own MULTI, so the RQ job is exactly what
    RQ writes (tests/unit/test_intake_rq.py runs one with an RQ worker)."""
    with conn.pipeline(transaction=True) as rec:
        queues.enqueue_submit(
            conn, job_id, retries=settings.worker.submit_retries, timeout=settings.worker.job_timeout, pipeline=rec
        )
        cmds = [tuple(args) for args, _options in rec.command_stack]
        rec.reset()
    return cmds


async def create_job(
    r: aioredis.Redis,
    conn: redis.Redis,
    keys: Keys,
    settings: Settings,
    body: JobCreate,
    owner: str,
    idem_key: str | None = None,
    fp: str | None = None,
) -> Job:
    """What ``create_job_sync`` does, on the event loop with the async client: one MULTI/EXEC
    (WATCHing the Idempotency-Key when there is one) holding the record, its indexes, the RQ
    submission (``rq_submit_commands``) and the key's answer. No thread hop, no blocking client."""
    job_id = new_job_id()
    now = time.time()
    fields = initial_fields(job_id, body.project, body.spec, body.placement, owner, now)
    job = initial_job(job_id, body, owner, fields)
    rq_cmds = rq_submit_commands(conn, job_id, settings)
    if not idem_key:
        # no WATCH needed: the MULTI/EXEC shares its round trip with concurrent requests'
        cmds: list[tuple[Any, ...]] = [("HSET", keys.job(job_id), *[x for kv in fields.items() for x in kv])]
        cmds += [("ZADD", key, score, member) for key, score, member in index_writes(keys, fields)]
        await shared(r).transaction(cmds + rq_cmds)
        return job
    try:
        async with r.pipeline(transaction=True) as p:
            await p.watch(idem_key)
            prev = await p.get(idem_key)
            if prev is not None:
                raise Replay(prev)
            p.multi()
            p.hset(keys.job(job_id), mapping=cast(dict[Any, Any], fields))  # redis-py's stubs want wider keys
            for key, score, member in index_writes(keys, fields):
                p.zadd(key, {member: score})
            for args in rq_cmds:
                p.execute_command(*args)
            state = IdemState(fp=fp or "", state="done", job_id=job_id, body=_enc.encode(job).decode())
            p.set(idem_key, _enc.encode(state), ex=settings.api.idempotency_ttl)
            try:
                await p.execute()
            except redis.WatchError:
                prev = await r.get(idem_key)
                if prev is None:  # written and expired at once: cannot happen with a TTL >= 60 s
                    raise
                raise Replay(prev) from None
    except RuntimeError as exc:
        if not closed_transport(exc):
            raise
        raise redis.ConnectionError(f"the connection to Redis closed during the request: {exc}") from exc
    return job


def closed_transport(exc: RuntimeError) -> bool:
    """redis-py's async pipeline, resetting a WATCHing connection after an error, sends UNWATCH
    on it; when the event loop (uvloop) has closed its transport already (the primary killed
    in a failover) that is a RuntimeError, not a ConnectionError: it is one all the same."""
    text = str(exc)
    return "handler is closed" in text or "closed=True" in text


idem_decoder: Any = msgspec.json.Decoder(IdemState)


# ---- a batch of jobs: one Lua call ---------------------------------------------------------------

# Each job of a batch is written all or nothing, and the whole batch in one round trip: one
# script, so that a job's Idempotency-Key can be checked and its job written in the same atomic
# step (a MULTI cannot make a write depend on a read). Every job is written by the commands the
# single intake sends (record, indexes, RQ's own submission; then the key's answer), given once
# as a template. Per job only what differs is sent ("slots"): the keys, the record's fields that
# are the job's own (PER_JOB_FIELDS), RQ's compressed call; a value that is the job's id inside
# fixed text (an index's member, RQ's fields naming the job) is made by the script from the id,
# sent once. Every key touched is passed in KEYS (a command names its key by its index there).
# KEYS: every key the batch touches, once.
# ARGV: 1 the number of jobs, 2 the number of template commands, 3 the keys' TTL (seconds);
# then per template command: its name, its key (an index in KEYS), its number of arguments,
# those arguments, its number of slots, and per slot its place (0: the key, i: the i-th
# argument) and kind (1: sent per job; 2: the text given next, the job's id, the text after);
# then per job: its Idempotency-Key's index in KEYS (0: none), its id, the values of its sent
# slots in order, and when it has a key, the key's answer.
# Returns per job 0 (written) or the key's stored answer (nothing of that job written).
# The shebang makes Redis refuse the whole script up front when it is out of memory, rather
# than failing a write half-way through a job.
BATCH_SCRIPT = """#!lua
local n, nt, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local a = 4
local tmpl = {}
for c = 1, nt do
  local name, key, nargs = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  local args = {}
  for j = 1, nargs do args[j] = ARGV[a + j - 1] end
  a = a + nargs
  local nslots = tonumber(ARGV[a])
  a = a + 1
  local slots = {}
  for j = 1, nslots do
    if tonumber(ARGV[a + 1]) == 2 then
      slots[j] = {tonumber(ARGV[a]), ARGV[a + 2], ARGV[a + 3]}
      a = a + 4
    else
      slots[j] = {tonumber(ARGV[a])}
      a = a + 2
    end
  end
  tmpl[c] = {name, key, args, slots}
end
local out = {}
for i = 1, n do
  local idem, id = tonumber(ARGV[a]), ARGV[a + 1]
  a = a + 2
  local prev = false
  if idem > 0 then prev = redis.call('GET', KEYS[idem]) end
  for c = 1, nt do
    local t = tmpl[c]
    local key, args = t[2], t[3]
    for _, s in ipairs(t[4]) do
      local v
      if s[2] then
        v = s[2] .. id .. s[3]
      else
        v = ARGV[a]
        a = a + 1
      end
      if s[1] == 0 then key = v else args[s[1]] = v end
    end
    if not prev then redis.call(t[1], KEYS[tonumber(key)], unpack(args)) end
  end
  if idem > 0 then
    if not prev then redis.call('SET', KEYS[idem], ARGV[a], 'EX', ttl) end
    a = a + 1
  end
  out[i] = prev or 0
end
return out
"""

_SENT, _AROUND_ID = 1, 2  # a slot's kinds (BATCH_SCRIPT)
_Slot = tuple[Any, ...]  # (place, _SENT) or (place, _AROUND_ID, text before, text after)


class BatchItem(msgspec.Struct, frozen=True):
    """One job of a batch, checked: its body, and its Idempotency-Key's Redis key and the
    body's fingerprint (None: no key)."""

    body: JobCreate
    idem_key: str | None = None
    fp: str = ""


def _swap(arg: Any, old: str, new: str) -> Any:
    """``arg`` of RQ's recorded commands for job ``old`` made job ``new``'s: the id in strings,
    and in the zlib-compressed JSON RQ stores the call in (``data``)."""
    if isinstance(arg, str):
        return arg.replace(old, new) if old in arg else arg
    if isinstance(arg, bytes):
        try:
            raw = zlib.decompress(arg)
        except zlib.error:
            return arg.replace(old.encode(), new.encode())
        return zlib.compress(raw.replace(old.encode(), new.encode())) if old.encode() in raw else arg
    return arg


def _names(arg: Any, job_id: str) -> bool:
    """Does ``arg`` (of RQ's recorded commands) hold ``job_id``?"""
    return _swap(arg, job_id, job_id + "x") != arg


class _Template:
    """The commands that write one job of a batch, with the places that differ per job."""

    def __init__(self, conn: redis.Redis, keys: Keys, settings: Settings, first: str, fields: dict[str, str]):
        self.first = first
        # RQ's submission as RQ itself records it, for the batch's first job; the others' are
        # made from it (recording costs ~130 µs a job): the places naming the first id are slots
        self.rq = rq_submit_commands(conn, first, settings)
        rq_slots = [[i for i, x in enumerate(cmd[1:]) if _names(x, first)] for cmd in self.rq]
        # per RQ slot: the id inside fixed text (the script makes it), or a value sent per job
        # (a key: it must be in KEYS; a compressed one: decompressed once, split around the id)
        self._rq_sent: list[tuple[bool, Any]] = []
        rq_kinds: list[list[_Slot]] = []
        for cmd, slots in zip(self.rq, rq_slots, strict=True):
            kinds: list[_Slot] = []
            for i in slots:
                v = cmd[1 + i]
                if i > 0 and isinstance(v, str) and v.count(first) == 1:
                    before, _, after = v.partition(first)
                    kinds.append((i, _AROUND_ID, before, after))
                    continue
                kinds.append((i, _SENT))
                raw = _zlib_of(v) if isinstance(v, bytes) else None
                self._rq_sent.append((True, raw.split(first.encode())) if raw is not None else (False, v))
            rq_kinds.append(kinds)
        # the record's per-job fields are slots; the others (the time, the state, the owner)
        # are the same for every job of the batch
        names = list(fields)
        hset: list[_Slot] = [(0, _SENT)]
        hset += [(2 + 2 * names.index(f), _AROUND_ID, "", "") if f == "id" else (2 + 2 * names.index(f), _SENT)
                 for f in PER_JOB_FIELDS]
        commands: list[tuple[list[Any], list[_Slot]]] = [
            (["HSET", keys.job(first), *[x for kv in fields.items() for x in kv]], hset)]
        # the indexes: every job's score is the batch's time; its project's index is sent
        for key, score, member in index_writes(keys, fields):
            per_project = key == keys.jobs_by_project(fields["project"])
            commands.append((["ZADD", key, score, member],
                             [*([(0, _SENT)] if per_project else []), (2, _AROUND_ID, "", "")]))
        commands += [(list(cmd), kinds) for cmd, kinds in zip(self.rq, rq_kinds, strict=True)]
        self.commands = commands

    def head(self, n: int, ttl: int, kidx: Any) -> list[Any]:
        """ARGV's template part (BATCH_SCRIPT), for ``n`` jobs."""
        out: list[Any] = [n, len(self.commands), ttl]
        for cmd, slots in self.commands:
            keyed = any(slot[0] == 0 for slot in slots)  # its key is each job's own
            out += [cmd[0], 0 if keyed else kidx(cmd[1]), len(cmd) - 2, *cmd[2:], len(slots)]
            for slot in slots:
                out += slot
        return out

    def rq_values(self, job_id: str) -> list[Any]:
        """RQ's sent values, for job ``job_id`` (as ``_swap`` makes them, quicker)."""
        first, new = self.first, job_id
        new_b = new.encode()
        out: list[Any] = []
        for packed, v in self._rq_sent:
            if packed:
                out.append(zlib.compress(new_b.join(v), _RQ_LEVEL))
            elif isinstance(v, str):
                out.append(v.replace(first, new))
            else:
                out.append(_swap(v, first, new))
        return out

    def rq_keys(self) -> list[bool]:
        """Per RQ sent value: is it a key (its index in KEYS is sent)?"""
        rq_commands = self.commands[len(self.commands) - len(self.rq):]
        return [slot[0] == 0 for _cmd, slots in rq_commands for slot in slots if slot[1] == _SENT]


# RQ's call data is ~70 bytes and barely compresses (74 bytes at level 6, 77 stored): stored
# (level 0) is still a zlib stream RQ's zlib.decompress reads, and takes 1.7 µs, not 6
_RQ_LEVEL = 0


def _zlib_of(b: bytes) -> bytes | None:
    try:
        return zlib.decompress(b)
    except zlib.error:
        return None


def batch_script_args(
    keys: Keys, settings: Settings, items: list[BatchItem], owner: str, conn: redis.Redis
) -> tuple[list[str], list[Any], list[Job]]:
    """KEYS and ARGV of ``BATCH_SCRIPT`` for ``items``, and the job each would be."""
    key_index: dict[str, int] = {}
    key_list: list[str] = []

    def kidx(k: str) -> int:
        i = key_index.get(k)
        if i is None:
            key_list.append(k)
            i = key_index[k] = len(key_list)
        return i

    def own(k: str) -> int:  # a key of one job alone (its id is new): no need to look it up
        key_list.append(k)
        return len(key_list)

    now = time.time()  # a batch's jobs share their time
    created = {"created": repr(now)}  # what initial_job reads of the record
    jobs: list[Job] = []
    per_job: list[Any] = []
    ids = new_job_ids(len(items))
    first = items[0].body
    template = _Template(conn, keys, settings, ids[0],
                         initial_fields(ids[0], first.project, first.spec, first.placement, owner, now))
    rq_is_key = template.rq_keys()
    for item, job_id in zip(items, ids, strict=True):
        body = item.body
        jobs.append(job := initial_job(job_id, body, owner, created))
        # as the template's slots read them: the record's key, its fields after the id (the
        # script puts the id in), then the project's index
        values = per_job_fields(job_id, body.project, body.spec, body.placement)
        per_job += [kidx(item.idem_key) if item.idem_key else 0, job_id, own(keys.job(job_id)), *values[1:],
                    kidx(keys.jobs_by_project(body.project))]
        for value, is_key in zip(template.rq_values(job_id), rq_is_key, strict=True):
            per_job.append(own(value) if is_key else value)
        if item.idem_key:
            per_job.append(_enc.encode(IdemState(fp=item.fp, state="done", job_id=job_id,
                                                 body=_enc.encode(job).decode())))
    return key_list, [*template.head(len(items), settings.api.idempotency_ttl, kidx), *per_job], jobs


async def create_jobs(
    r: aioredis.Redis, conn: redis.Redis, keys: Keys, settings: Settings, items: list[BatchItem], owner: str
) -> list[Job | Replay]:
    """Write ``items`` in one round trip (``BATCH_SCRIPT``): per item its new Job, or a
    ``Replay`` of its Idempotency-Key's earlier answer (then nothing of it was written; a key
    given twice in one batch replays the first's answer for the second)."""
    if not items:
        return []
    key_list, argv, jobs = batch_script_args(keys, settings, items, owner, conn)
    pipe = shared(r)
    replies = await pipe.evalsha(pipe.script(BATCH_SCRIPT), key_list, argv)
    return [job if reply == 0 else Replay(reply) for job, reply in zip(jobs, replies, strict=True)]
