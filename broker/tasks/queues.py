"""Queue names, retry policies and the enqueue helpers used by the API and the workers."""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue, Retry

# Order matters: a worker takes health checks before a backlog of submissions.
HEALTH, CANCEL, SUBMIT, POLL = "superfed-health", "superfed-cancel", "superfed-submit", "superfed-poll"
ALL_QUEUES = (HEALTH, CANCEL, SUBMIT, POLL)

SUBMIT_FN = "broker.tasks.entry.submit_job"
CANCEL_FN = "broker.tasks.entry.cancel_job"
POLL_FN = "broker.tasks.entry.poll_site"
HEALTH_FN = "broker.tasks.entry.check_site"
FAILED_FN = "broker.tasks.entry.on_submit_failure"


def submit_retry(retries: int) -> Retry:
    # backoff steps; RQ repeats the last one for the remaining tries
    return Retry(max=retries, interval=[1, 2, 3, 5, 8, 13, 20, 30])


def queue(conn: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=conn)


def enqueue_submit(conn: redis.Redis, job_id: str, *, retries: int, timeout: int, pipeline: Any = None) -> None:
    from rq.job import Callback

    queue(conn, SUBMIT).enqueue_call(
        SUBMIT_FN,
        args=(job_id,),
        job_id=f"submit-{job_id}",
        retry=submit_retry(retries),
        timeout=timeout,
        result_ttl=300,
        failure_ttl=24 * 3600,
        on_failure=Callback(FAILED_FN),
        pipeline=pipeline,
    )
