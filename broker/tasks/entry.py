"""RQ entry points: thin synchronous wrappers that run one coroutine on the worker's loop.

They take ids, never objects, so that what sits in Redis stays small and readable."""

from __future__ import annotations

from typing import Any

from rq import get_current_job

from broker.tasks import batch, cancel, health, poll, submit
from broker.tasks.runtime import current


def submit_job(job_id: str) -> str:
    rt = current()
    rq_job = get_current_job()
    if rq_job is None or rt.settings.worker.submit_concurrency <= 1:  # not under an RQ worker: just this one
        return rt.call(submit.run, rt, job_id)
    worker_name = rq_job.worker_name or ""
    first, claimed = rt.call(batch.run, rt, job_id, rt.settings.worker.submit_concurrency - 1, worker_name)
    if claimed:
        ttl = rq_job.result_ttl if rq_job.result_ttl is not None else 300
        batch.settle(rq_job.connection, claimed, worker_name, ttl)
    if isinstance(first, BaseException):
        raise first
    return first


def cancel_job(job_id: str) -> str:
    return current().call(cancel.run, current(), job_id)


def poll_site(site: str) -> str:
    return current().call(poll.run, current(), site)


def check_site(site: str) -> str:
    return current().call(health.run, current(), site)


def on_submit_failure(job: Any, connection: Any, typ: Any, value: Any, tb: Any) -> None:
    """Out of retries: the job fails with the last reason (it never silently stays NEW)."""
    if job.retries_left:
        return  # RQ will run it again
    job_id = job.args[0]
    rt = current()

    async def _fail() -> None:
        await rt.jobs.advance(job_id, "FAILED", fields={"message": f"gave up after retries: {value}"})

    rt.call(_fail)
