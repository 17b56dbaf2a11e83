"""RQ entry points: thin synchronous wrappers that run one coroutine on the worker's loop.

They take ids, never objects, so that what sits in Redis stays small and readable."""

from __future__ import annotations

from typing import Any

from broker.tasks import cancel, health, poll, submit
from broker.tasks.runtime import current


def submit_job(job_id: str) -> str:
    return current().call(submit.run, current(), job_id)


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
