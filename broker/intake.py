"""Accepting a job: checks, idempotency, and one atomic write of the record, its indexes,
its RQ submission and its idempotency answer (a 202 always means a job that will be worked on)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import msgspec
import redis

from broker.config import Settings
from broker.schemas import Job, JobCreate
from broker.store.jobs import index_writes, initial_fields, job_from_hash, new_job_id
from broker.store.keys import Keys
from broker.tasks import queues

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

    def __init__(self, raw: bytes):
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
    job = job_from_hash(fields)
    with conn.pipeline(transaction=True) as p:
        if idem_key:
            p.watch(idem_key)
            prev = p.get(idem_key)
            if prev is not None:
                raise Replay(prev)
        p.multi()
        p.hset(keys.job(job_id), mapping=fields)
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


idem_decoder: Any = msgspec.json.Decoder(IdemState)
