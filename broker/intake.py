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
# step (a MULTI cannot make a write depend on a read). The commands are the ones the single
# intake sends (record, indexes, RQ's own submission, the key's answer), given as data; every key
# they touch is passed in KEYS (a command names its key by index), none is built here.
# KEYS: every key the batch touches, once. ARGV: 1 the number of jobs; then per job: its
# Idempotency-Key's index in KEYS (0: none), its number of commands, and per command: the
# command's name, its key's index in KEYS, its number of further arguments, those arguments.
# Returns per job 0 (written) or the key's stored answer (nothing of that job written).
# The shebang makes Redis refuse the whole script up front when it is out of memory, rather
# than failing a write half-way through a job.
BATCH_SCRIPT = """#!lua
local n = tonumber(ARGV[1])
local a = 2
local out = {}
for i = 1, n do
  local idem, ncmd = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local prev = false
  if idem > 0 then prev = redis.call('GET', KEYS[idem]) end
  for _ = 1, ncmd do
    local name, key, nargs = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    if not prev then redis.call(name, KEYS[key], unpack(ARGV, a + 3, a + 2 + nargs)) end
    a = a + 3 + nargs
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


def rq_commands_like(template: list[tuple[Any, ...]], old: str, new: str) -> list[tuple[Any, ...]]:
    """RQ's submission commands for job ``new``, made from those recorded for job ``old`` (the
    same call, retry policy and times): recording RQ's enqueue costs ~130 µs of CPU a job, most
    of a batched job's cost. Job ids are random enough that ``old`` appears nowhere else
    (tests/unit/test_intake_rq.py checks the result against RQ's own, and runs one)."""
    return [tuple(_swap(a, old, new) for a in cmd) for cmd in template]


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

    argv: list[Any] = [len(items)]
    jobs: list[Job] = []
    template: list[tuple[Any, ...]] = []
    first = ""
    now = time.time()
    for item in items:
        body = item.body
        job_id = new_job_id()
        fields = initial_fields(job_id, body.project, body.spec, body.placement, owner, now)
        job = initial_job(job_id, body, owner, fields)
        jobs.append(job)
        if not template:
            template, first = rq_submit_commands(conn, job_id, settings), job_id
            rq_cmds = template
        else:
            rq_cmds = rq_commands_like(template, first, job_id)
        cmds: list[tuple[Any, ...]] = [("HSET", keys.job(job_id), *[x for kv in fields.items() for x in kv])]
        cmds += [("ZADD", key, score, member) for key, score, member in index_writes(keys, fields)]
        cmds += rq_cmds
        if item.idem_key:
            state = IdemState(fp=item.fp, state="done", job_id=job_id, body=_enc.encode(job).decode())
            cmds.append(("SET", item.idem_key, _enc.encode(state), "EX", settings.api.idempotency_ttl))
        argv += [kidx(item.idem_key) if item.idem_key else 0, len(cmds)]
        for name, key, *rest in cmds:
            argv += [name, kidx(key), len(rest), *rest]
    return key_list, argv, jobs


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
