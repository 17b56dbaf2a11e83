"""Status polls: per site, one request per system for all the broker's jobs there; and a look
for late copies of jobs whose try there was given up (broker/tasks/late_copies.py)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime

import msgspec

from adapters.errors import AdapterError
from broker.schemas import Attempt
from broker.store import outcomes
from broker.tasks import late_copies
from broker.tasks.runtime import Runtime

log = logging.getLogger("superfed.poll")


async def run(rt: Runtime, site_name: str) -> str:
    active = await rt.jobs.active(site_name)
    watched = await rt.late.watched(site_name)
    if not active and not watched:
        return "nothing to poll"
    found = await rt.adapters.by_name(site_name)
    if found is None:
        return "no such site"
    _site, adapter = found
    copies = await late_copies.check(rt, site_name, adapter, watched) if watched else 0
    by_system: dict[str, dict[str, str]] = defaultdict(dict)  # system -> native id -> job id
    for job_id, where in active.items():
        by_system[where.system][where.native_id] = job_id
    moved = 0
    for system, natives in by_system.items():
        try:
            statuses = await adapter.statuses(list(natives), system)
        except AdapterError as exc:
            log.warning("poll %s/%s failed: %s", site_name, system, exc)
            continue
        for native, job_id in natives.items():
            st = statuses.get(native)
            if st is None:
                continue  # absence is not completion: the next poll asks again
            fields: dict[str, object] = {"native_state": st.native_state}
            if st.exit_code is not None:
                fields["exit_code"] = st.exit_code
            if st.message:
                fields["message"] = st.message
            changed = await rt.jobs.advance(job_id, st.state, fields=fields, site=site_name)
            moved += max(0, changed)
            if changed > 0:  # a line per move, so a worker's log tells each job's way
                log.info("%s: %s at %s (%s %s)", job_id, st.state, site_name, system, native,
                         extra={"job_id": job_id, "site": site_name})
            if st.state == "FAILED" and changed > 0:
                await _count_quick_failure(rt, site_name, job_id)
    return f"{len(active)} polled, {moved} moved" + (f", {copies} late copies canceled" if copies else "")


async def _count_quick_failure(rt: Runtime, site_name: str, job_id: str) -> None:
    """A job that failed within seconds of being accepted counts against the site in the
    black-hole guard, as a refusal does."""
    h = await rt.jobs.get_hash(job_id)
    raw = (h or {}).get("attempts") or "[]"
    tries = msgspec.json.decode(raw if raw != "{}" else "[]", type=list[Attempt])
    if not tries or tries[-1].site != site_name:
        return
    try:
        accepted = datetime.fromisoformat(tries[-1].at).timestamp()
    except ValueError:
        return
    if time.time() - accepted < outcomes.QUICK_FAILURE:
        await outcomes.record(rt.redis, rt.keys, site_name, ok=False, last=rt.settings.placement.demote_last)
