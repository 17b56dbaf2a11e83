"""The sweeper: a 202 means the job will be worked on, so a NEW job whose submission nothing
holds (no queue, no retry registry, no worker's claim) is enqueued again, once it has been seen
so on two sweeps in a row (a Redis crash can keep an RQ job's hash but lose the move that
queued it; a worker may be between its dequeue and its claim). Run every
``maintenance_interval`` by the worker holding the sweep lease (broker/worker.py)."""

from __future__ import annotations

import logging
import time
from typing import cast

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus

from broker import queues
from broker.tasks.runtime import Runtime

log = logging.getLogger("superfed.sweep")

GRACE = 30.0  # seconds after acceptance before a job's submission is looked for


async def run(rt: Runtime, conn: redis.Redis) -> str:
    """``conn``: a bytes client for RQ's (synchronous) API."""
    k, cfg = rt.keys, rt.settings.worker
    cutoff_us = int((time.time() - GRACE) * 1_000_000)
    ids = cast(list[str], await rt.redis.zrangebyscore(k.jobs_by_state("NEW"), "-inf", cutoff_us, start=0, num=500))
    if not ids:
        return "nothing to sweep"
    rq_ids = [queues.submit_rq_id(j) for j in ids]
    claimed = await rt.redis.hmget(k.claims, rq_ids)
    q = queues.queue(conn, queues.SUBMIT)
    held = [j for j, rq_id, claim in zip(ids, rq_ids, claimed, strict=True) if claim or _held(q, rq_id)]
    if held:
        await rt.redis.hdel(k.sweep_suspects, *held)
    again = []
    for job_id in sorted(set(ids) - set(held)):
        if await rt.redis.hsetnx(k.sweep_suspects, job_id, repr(time.time())):
            continue  # the first sighting: look again next sweep
        log.info("sweeper: re-enqueueing the submission of %s", job_id)
        await rt.redis.hdel(k.sweep_suspects, job_id)
        queues.enqueue_submit(conn, job_id, retries=cfg.submit_retries, timeout=cfg.job_timeout)
        again.append(job_id)
    return f"{len(ids)} NEW, {len(again)} enqueued again"


def _held(q: Queue, rq_id: str) -> bool:
    """Whether RQ holds the submission where its status says (queued, or waiting to retry)."""
    try:
        status = RQJob.fetch(rq_id, connection=q.connection, serializer=queues.SERIALIZER).get_status()
    except NoSuchJobError:
        return False
    if status == JobStatus.QUEUED:
        return q.get_job_position(rq_id) is not None
    if status == JobStatus.SCHEDULED:
        return rq_id in q.scheduled_job_registry
    return status == JobStatus.DEFERRED  # finished, failed, stopped, canceled; or started with no claim
