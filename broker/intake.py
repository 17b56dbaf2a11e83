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
from broker.store.jobs import index_writes, initial_fields, initial_job, new_job_id
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
    return job


idem_decoder: Any = msgspec.json.Decoder(IdemState)


# ---- a batch of jobs: one Lua call ---------------------------------------------------------------

# Each job of a batch is written all or nothing, and the whole batch in one round trip: one
# script, so that a job's Idempotency-Key can be checked and its job written in the same atomic
# step (a MULTI cannot make a write depend on a read). Every job is written by the commands the
# single intake sends (record, indexes, RQ's own submission; then the key's answer), given once
# as a template: per job only the arguments that differ ("slots": the keys, the record's values,
# the index scores, RQ's id-bearing fields) are sent, a third of the whole. Every key touched
# is passed in KEYS (a command names its key by its index there); none is built here.
# KEYS: every key the batch touches, once.
# ARGV: 1 the number of jobs, 2 the number of template commands, 3 the keys' TTL (seconds);
# then per template command: its name, its key (an index in KEYS), its number of arguments,
# those arguments, its number of slots and their places (0: the key, i: the i-th argument);
# then per job: its Idempotency-Key's index in KEYS (0: none), each command's slot values in
# order, and when it has a key, the key's answer.
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
  local slots = {}
  for j = 1, nslots do slots[j] = tonumber(ARGV[a + j]) end
  a = a + 1 + nslots
  tmpl[c] = {name, key, args, slots}
end
local out = {}
for i = 1, n do
  local idem = tonumber(ARGV[a])
  a = a + 1
  local prev = false
  if idem > 0 then prev = redis.call('GET', KEYS[idem]) end
  for c = 1, nt do
    local t = tmpl[c]
    local key, args = t[2], t[3]
    for _, pos in ipairs(t[4]) do
      if pos == 0 then key = ARGV[a] else args[pos] = ARGV[a] end
      a = a + 1
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

    def __init__(self, conn: redis.Redis, settings: Settings, first: str):
        self.first = first
        # RQ's submission as RQ itself records it, for the batch's first job; the others' are
        # made from it (recording costs ~130 µs a job): the places naming the first id are slots
        self.rq = rq_submit_commands(conn, first, settings)
        self.rq_slots = [[i for i, x in enumerate(cmd[1:]) if _names(x, first)] for cmd in self.rq]
        self.flat_slots = [i for slots in self.rq_slots for i in slots]
        # each slot's first-job value, a zlib-compressed one decompressed once and split
        # around the first job's id (the others' are joined around theirs)
        self._slot_values: list[tuple[bool, Any]] = []
        for cmd, slots in zip(self.rq, self.rq_slots, strict=True):
            for i in slots:
                v = cmd[1 + i]
                raw = _zlib_of(v) if isinstance(v, bytes) else None
                self._slot_values.append((True, raw.split(first.encode())) if raw is not None else (False, v))

    def commands(self, fields: dict[str, str], idx: list[tuple[str, float, str]]) -> list[tuple[list[Any], list[int]]]:
        """(the first job's command, its slots) for each command that writes a job."""
        out: list[tuple[list[Any], list[int]]] = [
            (["HSET", "", *[x for kv in fields.items() for x in kv]], [0, *range(2, 2 * len(fields) + 1, 2)])]
        out += [(["ZADD", key, score, member], [0, 1, 2]) for key, score, member in idx]
        out += [(list(cmd), slots) for cmd, slots in zip(self.rq, self.rq_slots, strict=True)]
        return out

    def rq_values(self, job_id: str) -> list[Any]:
        """RQ's values at the slots, for job ``job_id`` (as ``_swap`` makes them, quicker)."""
        first, new = self.first, job_id
        new_b = new.encode()
        out: list[Any] = []
        for packed, v in self._slot_values:
            if packed:
                out.append(zlib.compress(new_b.join(v), 6, _RQ_WBITS))
            elif isinstance(v, str):
                out.append(v.replace(first, new))
            else:
                out.append(_swap(v, first, new))
        return out


# RQ's call data is ~100 bytes: a 512-byte window compresses it as well as zlib's default
# 32 KiB one and sets up three times faster; RQ's zlib.decompress reads either
_RQ_WBITS = 9


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

    jobs: list[Job] = []
    per_job: list[Any] = []
    template: _Template | None = None
    head: list[Any] = []
    now = time.time()
    for item in items:
        body = item.body
        job_id = new_job_id()
        fields = initial_fields(job_id, body.project, body.spec, body.placement, owner, now)
        job = initial_job(job_id, body, owner, fields)
        jobs.append(job)
        idx = index_writes(keys, fields)
        if template is None:
            template = _Template(conn, settings, job_id)
            cmds = template.commands(fields, idx)
            for cmd, slots in cmds:
                cmd[1] = kidx(keys.job(job_id)) if cmd[0] == "HSET" and cmd[1] == "" else kidx(cmd[1])
                head += [cmd[0], cmd[1], len(cmd) - 2, *cmd[2:], len(slots), *slots]
            head = [len(items), len(cmds), settings.api.idempotency_ttl, *head]
        per_job.append(kidx(item.idem_key) if item.idem_key else 0)
        per_job += [kidx(keys.job(job_id)), *fields.values()]
        for key, score, member in idx:
            per_job += [kidx(key), score, member]
        for value, i in zip(template.rq_values(job_id), template.flat_slots, strict=True):
            per_job.append(kidx(value) if i == 0 else value)
        if item.idem_key:
            per_job.append(_enc.encode(IdemState(fp=item.fp, state="done", job_id=job_id,
                                                 body=_enc.encode(job).decode())))
    return key_list, [*head, *per_job], jobs


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
