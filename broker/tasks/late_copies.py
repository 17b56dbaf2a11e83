"""Late copies: a job that showed up at a facility after its try there was given up.

Run with each status poll of a site (broker/tasks/poll.py) for the jobs watched there
(broker/store/late_copies.py). A copy that is not the job's own is canceled at once and the
cancel recorded on the job (attempt outcome ``canceled-copy``), so one job never runs twice."""

from __future__ import annotations

import logging
import time

from adapters.base import SiteAdapter
from adapters.errors import AdapterError
from broker.schemas import Attempt
from broker.store.jobs import now_iso
from broker.store.late_copies import Watch
from broker.tasks.runtime import Runtime

log = logging.getLogger("superfed.late_copies")


async def check(rt: Runtime, site_name: str, adapter: SiteAdapter, watched: dict[str, Watch]) -> int:
    """Look for each watched job at the site; cancel the copies found. Returns how many."""
    canceled = 0
    now = time.time()
    for job_id, w in watched.items():
        if now > w.until:
            await rt.late.forget(site_name, job_id)
            continue
        try:
            receipt = await adapter.find_by_tag(job_id, w.system)
        except AdapterError as exc:
            log.warning("%s: cannot look for a late copy at %s: %s", job_id, site_name, exc)
            continue  # the next poll looks again
        if receipt is None:
            continue
        job = await rt.jobs.record(job_id)
        if job is not None and job.site == site_name and job.native_id == receipt.native_id:
            await rt.late.forget(site_name, job_id)  # settled here after all: it is the job's own
            continue
        if job is not None and job.state == "NEW" and job.inflight is not None and job.inflight.site == site_name:
            continue  # a try there is under way again: settling it decides what that copy is
        try:
            await adapter.cancel(receipt.native_id, w.system)
        except AdapterError as exc:
            log.warning("%s: cannot cancel the late copy %s at %s: %s", job_id, receipt.native_id, site_name, exc)
            continue
        await rt.late.record(
            job_id,
            Attempt(
                site=site_name,
                at=now_iso(),
                outcome="canceled-copy",
                native_id=receipt.native_id,
                error=f"a copy appeared {now - w.since:.0f} s after the try here was given up; canceled",
            ),
        )
        await rt.late.forget(site_name, job_id)
        log.warning("%s: canceled a late copy at %s (%s)", job_id, site_name, receipt.native_id,
                    extra={"job_id": job_id, "site": site_name})
        canceled += 1
    return canceled
