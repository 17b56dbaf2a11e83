"""Cancel: at the facility when the job is there; the next poll confirms it."""

from __future__ import annotations

from adapters.errors import AdapterError, NotFound
from broker.tasks.runtime import Runtime


async def run(rt: Runtime, job_id: str) -> str:
    h = await rt.jobs.get_hash(job_id)
    if h is None:
        return "no such job"
    if h["state"] in ("COMPLETED", "FAILED", "CANCELED"):
        return f"already {h['state']}"
    native, site_name, system = h.get("native_id"), h.get("site"), h.get("system")
    if not native or not site_name:
        if h.get("inflight"):
            return "submission in flight; the submitter cancels it when it lands"
        await rt.jobs.advance(job_id, "CANCELED", detail="canceled before it reached a facility")
        return "canceled"
    found = await rt.site_adapter(site_name)
    if found is None:
        await rt.jobs.advance(job_id, "CANCELED", fields={"message": f"site {site_name} was removed"})
        return "canceled (site gone)"
    _site, adapter = found
    try:
        await adapter.cancel(native, system or adapter.systems[0])
    except NotFound:
        await rt.jobs.advance(job_id, "CANCELED", fields={"message": "the facility no longer knows the job"})
        return "canceled (unknown at facility)"
    except AdapterError as exc:
        if exc.retriable:
            raise
        await rt.jobs.advance(job_id, fields={"message": f"cancel refused by {site_name}: {exc.message}"})
        return "refused"
    from broker.tasks import poll

    await poll.run(rt, site_name)
    return "cancel sent"
