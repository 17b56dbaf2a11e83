"""Queue names, retry policies, the serializer, the allow-list, and the enqueue helpers used by
the API and the workers (here, not in ``broker.tasks``, because the API must not import the
worker package).

RQ jobs carry JSON (RQ's ``JSONSerializer``), never pickles, and a worker runs only the
functions named in ``ALLOWED``: anyone who can write to Redis could otherwise enqueue
``os.system`` (RQ imports whatever dotted name a job holds) or a pickle that runs code while it
is read. ``refusal`` is checked before a job's function is imported."""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import DeserializationError
from rq.job import Job as RQJob
from rq.serializers import JSONSerializer

# Order matters: a worker takes health checks before a backlog of submissions.
HEALTH, CANCEL, SUBMIT, POLL = "superfed-health", "superfed-cancel", "superfed-submit", "superfed-poll"
ALL_QUEUES = (HEALTH, CANCEL, SUBMIT, POLL)

SUBMIT_FN = "broker.tasks.entry.submit_job"
CANCEL_FN = "broker.tasks.entry.cancel_job"
POLL_FN = "broker.tasks.entry.poll_site"
HEALTH_FN = "broker.tasks.entry.check_site"
FAILED_FN = "broker.tasks.entry.on_submit_failure"

SERIALIZER = JSONSerializer
# the only functions a worker runs, and the one failure callback it calls
ALLOWED = frozenset({SUBMIT_FN, CANCEL_FN, POLL_FN, HEALTH_FN})
ALLOWED_CALLBACKS = frozenset({FAILED_FN})


def refusal(job: RQJob) -> str | None:
    """Why ``job`` must not run (None if it may): data that is not JSON, a function or a
    callback outside the allow-list, or arguments that are not one id string."""
    try:
        func, instance, args, kwargs = job.func_name, job.instance, job.args, job.kwargs
    except DeserializationError:
        return "its data is not JSON (a pickle?)"
    except (TypeError, ValueError) as exc:
        return f"its data is malformed ({type(exc).__name__})"
    if func not in ALLOWED:
        return f"function {func!r} is not one of the broker's tasks"
    if instance is not None or kwargs or not (isinstance(args, list | tuple) and len(args) == 1):
        return "its arguments are not one id"
    if not isinstance(args[0], str):
        return "its argument is not a string"
    saved = job.to_dict(include_meta=False, include_result=False)
    for name in (saved.get(f"{k}_callback_name") for k in ("success", "failure", "stopped")):
        if name and name not in ALLOWED_CALLBACKS:
            return f"callback {name!r} is not one of the broker's"
    return None


def submit_retry(retries: int) -> Retry:
    # backoff steps; RQ repeats the last one for the remaining tries
    return Retry(max=retries, interval=[1, 2, 3, 5, 8, 13, 20, 30])


def queue(conn: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=conn, serializer=SERIALIZER)


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
