"""Several submissions per RQ job: when a worker starts a submission, it also claims up to
``worker.submit_batch - 1`` further queued submissions and runs them all at once on its event
loop. RQ's own per-job loop (dequeue, fetch, registries, worker state: about 2 ms of CPU a job)
is then paid once per batch, and the submissions wait for Redis and the facilities together.

What keeps this as safe as one job at a time:
* Claiming is one Lua call: each claimed RQ job leaves the queue and enters the queue's
  StartedJobRegistry (as ``{rq id}:{execution id}``, scored by when its heartbeat runs out) with
  status ``started``, in the same step. No RQ worker can dequeue it any more and the sweeper
  sees it as held.
* While the batch runs, its claimed jobs' heartbeats are renewed like a running job's. A killed
  worker stops renewing them, and RQ's maintenance treats them as abandoned (AbandonedJobError:
  retried with the job's backoff), exactly as it does the RQ job the worker was running.
* Each finished job is settled as RQ would: success -> finished (result kept ``result_ttl``);
  an exception -> RQ's retry with its backoff, or failed (with the failure callback) when no
  retries are left. The submission itself is the same ``submit.run`` (inflight marks, settling
  an uncertain try), so exactly-once at the facility does not depend on RQ at all."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import traceback
from dataclasses import dataclass
from typing import Any

from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.utils import now, utcformat

from broker import queues
from broker.tasks import submit
from broker.tasks.runtime import Runtime

log = logging.getLogger("superfed.batch")

PREFIX = "submit-"

# KEYS: 1 the submit queue's list, 2 its started registry
# ARGV: 1 how many, 2 heartbeat deadline (unix s), 3 worker name, 4 now (RQ's time format),
#       5 a random execution-id prefix, 6 the RQ job key prefix
_CLAIM = """
local want = tonumber(ARGV[1])
local out, got = {}, 0
local ids = redis.call('LRANGE', KEYS[1], 0, want * 2 - 1)
for i, id in ipairs(ids) do
  if got >= want then break end
  if string.sub(id, 1, 7) == 'submit-' and redis.call('EXISTS', ARGV[6] .. id) == 1 then
    if redis.call('LREM', KEYS[1], 1, id) == 1 then
      local exec = ARGV[5] .. i
      redis.call('ZADD', KEYS[2], ARGV[2], id .. ':' .. exec)
      redis.call('HSET', ARGV[6] .. id, 'status', 'started', 'worker_name', ARGV[3],
                 'started_at', ARGV[4], 'last_heartbeat', ARGV[4])
      table.insert(out, id)
      table.insert(out, exec)
      got = got + 1
    end
  end
end
return out
"""


@dataclass
class Claimed:
    rq_id: str
    execution: str
    result: str | None = None
    error: BaseException | None = None

    @property
    def job_id(self) -> str:
        return self.rq_id.removeprefix(PREFIX)

    @property
    def member(self) -> str:
        return f"{self.rq_id}:{self.execution}"


async def claim(rt: Runtime, n: int, worker_name: str) -> list[Claimed]:
    if n <= 0:
        return []
    q = rt.settings.worker
    reply = await rt.redis.eval(
        _CLAIM,
        2,
        f"rq:queue:{queues.SUBMIT}",
        f"rq:wip:{queues.SUBMIT}",
        n,
        repr(time.time() + q.abandoned_after),
        worker_name,
        utcformat(now()),
        secrets.token_hex(6) + "-",
        RQJob.redis_job_namespace_prefix,
    )
    return [Claimed(rq_id=reply[i], execution=reply[i + 1]) for i in range(0, len(reply), 2)]


async def run(rt: Runtime, job_id: str, extra: int, worker_name: str) -> tuple[str | BaseException, list[Claimed]]:
    """Run ``job_id`` (the RQ job being performed) and up to ``extra`` claimed ones together.
    Returns the first's result (or its exception) and the claimed jobs with theirs."""
    claimed = await claim(rt, extra, worker_name)
    if not claimed:
        try:
            return await submit.run(rt, job_id), []
        except Exception as exc:  # handed back to RQ by the caller
            return exc, []

    async def one(c: Claimed) -> None:
        try:
            c.result = await submit.run(rt, c.job_id)
        except Exception as exc:  # settled as RQ would (retry / failed)
            c.error = exc

    beat = asyncio.create_task(_renew(rt, claimed))
    try:
        first, *_ = await asyncio.gather(
            submit.run(rt, job_id), *(one(c) for c in claimed), return_exceptions=True
        )
    finally:
        beat.cancel()
    return first, claimed


async def _renew(rt: Runtime, claimed: list[Claimed]) -> None:
    """Keep the claimed jobs' heartbeats fresh, as BrokerWorker does for the job it runs."""
    every = max(1.0, rt.settings.worker.abandoned_after / 3)
    key = f"rq:wip:{queues.SUBMIT}"
    while True:
        await asyncio.sleep(every)
        try:
            deadline = time.time() + rt.settings.worker.abandoned_after
            await rt.redis.zadd(key, {c.member: deadline for c in claimed}, xx=True)
        except Exception as exc:  # Redis away: the next beat tries again
            log.warning("heartbeat for claimed submissions: %s", exc)


def settle(conn: Any, claimed: list[Claimed], worker_name: str, result_ttl: int) -> None:
    """RQ's bookkeeping for finished claimed jobs (synchronous, on the worker's RQ connection)."""
    q = queues.queue(conn, queues.SUBMIT)
    wip = q.started_job_registry.key
    ended = utcformat(now())
    with conn.pipeline() as p:
        for c in claimed:
            if c.error is not None:
                continue
            key = RQJob.key_for(c.rq_id)
            p.zrem(wip, c.member)
            p.hset(key, mapping={"status": JobStatus.FINISHED.value, "ended_at": ended})
            if result_ttl > 0:
                p.expire(key, result_ttl)
                p.zadd(q.finished_job_registry.key, {c.rq_id: time.time() + result_ttl})
            else:
                p.delete(key)
        p.execute()
    for c in claimed:
        if c.error is not None:
            _failed(conn, q, c, worker_name)


def _failed(conn: Any, q: Any, c: Claimed, worker_name: str) -> None:
    assert c.error is not None
    exc_string = "".join(traceback.format_exception(c.error))
    try:
        job = RQJob.fetch(c.rq_id, connection=conn, serializer=queues.SERIALIZER)
    except Exception:  # the job expired meanwhile: nothing to retry (the sweeper covers NEW jobs)
        conn.zrem(q.started_job_registry.key, c.member)
        return
    callback = job.failure_callback  # as RQ: called on every failure, before the retry
    if callback is not None:
        try:
            callback(job, conn, type(c.error), c.error, c.error.__traceback__)
        except Exception:
            log.exception("%s: failure callback", c.rq_id)
    with conn.pipeline() as p:
        if job.retries_left and job.retries_left > 0:
            job.retry(q, p)
        else:
            job.set_status(JobStatus.FAILED, pipeline=p)
            job._handle_failure(exc_string, p, worker_name=worker_name)
        p.zrem(q.started_job_registry.key, c.member)
        p.execute()
