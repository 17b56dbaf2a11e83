"""Queue names, retry policy, serializer and allow-list of the broker's RQ jobs, and the
enqueue helper used by the API and the workers (here, not in ``broker.tasks``, because the API
must not import the worker package).

RQ jobs carry JSON (RQ's ``JSONSerializer``), never pickles, and a worker runs only the
functions named in ``ALLOWED`` (broker/tasks/entry.py maps each to its code): anyone who can
write to Redis could otherwise enqueue ``os.system`` (RQ imports whatever dotted name a job
holds) or a pickle that runs code as it is read. ``refusal`` is checked before a job's function
is looked up."""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import DeserializationError
from rq.job import Job as RQJob
from rq.serializers import JSONSerializer

from broker import tracing

# Order matters: a worker takes cancels before a backlog of submissions.
CANCEL, SUBMIT = "superfed-cancel", "superfed-submit"
ALL_QUEUES = (CANCEL, SUBMIT)

SUBMIT_FN = "broker.tasks.submit.run"
CANCEL_FN = "broker.tasks.cancel.run"

SERIALIZER = JSONSerializer
ALLOWED = frozenset({SUBMIT_FN, CANCEL_FN})  # the only functions a worker runs


def submit_rq_id(job_id: str) -> str:
    return f"submit-{job_id}"


def refusal(job: RQJob) -> str | None:
    """Why ``job`` must not run (None if it may): data that is not JSON, a function outside the
    allow-list, arguments other than one id string, or any callback (the broker sets none)."""
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
    for kind in ("success", "failure", "stopped"):
        if saved.get(f"{kind}_callback_name"):
            return f"it names a {kind} callback ({saved[f'{kind}_callback_name']!r}); the broker sets none"
    return None


def submit_retry(retries: int) -> Retry:
    # backoff steps; RQ repeats the last one for the remaining tries
    return Retry(max=retries, interval=[1, 2, 3, 5, 8, 13, 20, 30])


def queue(conn: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=conn, serializer=SERIALIZER)


def enqueue_submit(conn: redis.Redis, job_id: str, *, retries: int, timeout: int, pipeline: Any = None) -> None:
    queue(conn, SUBMIT).enqueue_call(
        SUBMIT_FN,
        args=(job_id,),
        job_id=submit_rq_id(job_id),
        retry=submit_retry(retries),
        timeout=timeout,
        result_ttl=300,
        failure_ttl=24 * 3600,
        meta=tracing.carrier(),  # the request's trace context, when tracing is on (else None: no meta)
        pipeline=pipeline,
    )
