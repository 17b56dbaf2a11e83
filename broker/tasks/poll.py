"""Status polls: per site, one request per system for all the broker's jobs there."""

from __future__ import annotations

import logging
from collections import defaultdict

from adapters.errors import AdapterError
from broker.tasks.runtime import Runtime

log = logging.getLogger("superfed.poll")


async def run(rt: Runtime, site_name: str) -> str:
    active = await rt.jobs.active(site_name)
    if not active:
        return "nothing to poll"
    found = await rt.adapters.by_name(site_name)
    if found is None:
        return "no such site"
    _site, adapter = found
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
            moved += max(0, await rt.jobs.advance(job_id, st.state, fields=fields))
    return f"{len(active)} polled, {moved} moved"
