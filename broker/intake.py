"""Accepting a job: checks, idempotency, and one atomic write of the record, its indexes,
its RQ submission and its idempotency answer (a 202 always means a job that will be worked on)."""

from __future__ import annotations

import hashlib
import time
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
