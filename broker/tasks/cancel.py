"""Cancel: at the facility when the job is there; the next poll confirms it."""

from __future__ import annotations

from adapters.errors import AdapterError, NotFound
from broker.states import FINAL
from broker.tasks.runtime import Runtime


async def run(rt: Runtime, job_id: str, runner: str = "") -> str:
    """``runner`` is unused: a cancel sent twice is harmless, so cancels are not fenced."""
    job = await rt.jobs.record(job_id)
    if job is None:
        return "no such job"
    if job.state in FINAL:
        return f"already {job.state}"
    if not job.native_id or not job.site:
        if job.inflight is not None:
            return "submission in flight; the submitter cancels it when it lands"
        await rt.jobs.advance(job_id, "CANCELED", detail="canceled before it reached a facility")
        return "canceled"
    found = await rt.adapters.by_name(job.site)
    if found is None:
        await rt.jobs.advance(job_id, "CANCELED", fields={"message": f"site {job.site} was removed"})
        return "canceled (site gone)"
    _site, adapter = found
    try:
        await adapter.cancel(job.native_id, job.system or adapter.systems[0])
    except NotFound:
        await rt.jobs.advance(job_id, "CANCELED", fields={"message": "the facility no longer knows the job"})
        return "canceled (unknown at facility)"
    except AdapterError as exc:
        if exc.retriable:
            raise
        await rt.jobs.advance(job_id, fields={"message": f"cancel refused by {job.site}: {exc.message}"})
        return "refused"
    from broker.tasks import poll

    await poll.run(rt, job.site)
    return "cancel sent"
