"""Status polls: per site, one request per system for all the broker's jobs there."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from adapters.errors import AdapterError
from broker.tasks.runtime import Runtime

log = logging.getLogger("superfed.poll")


async def run(rt: Runtime, site_name: str) -> str:
    found = await rt.site_adapter(site_name)
    if found is None:
        return "no such site"
    site, adapter = found
    try:
        return await _poll(rt, site_name, adapter)
    finally:
        # the next poll comes one interval after this one ended (see health.run)
        await rt.redis.set(rt.keys.tick("poll", site_name), "1", px=int(site.poll_interval * 1000))


async def _poll(rt: Runtime, site_name: str, adapter: Any) -> str:
    active = await rt.jobs.active(site_name)
    if not active:
        return "nothing to poll"
    by_system: dict[str, dict[str, str]] = defaultdict(dict)  # system -> native id -> job id
    for job_id, (system, native) in active.items():
        by_system[system][native] = job_id
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
