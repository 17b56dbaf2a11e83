"""Health checks: one per site per interval (run by the worker that holds the site's health lease),
stored with their time, changes published."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from adapters.errors import AdapterError, AuthFailed
from adapters.types import SiteHealth
from broker.config import SiteConfig
from broker.health import HealthRecord, changes, next_record
from broker.tasks.runtime import Runtime

ALLOCATIONS_EVERY = 60.0  # seconds between allocation reads (they change slowly)


async def run(rt: Runtime, site_name: str) -> str:
    found = await rt.adapters.by_name(site_name)
    if found is None:
        return "no such site"
    site, adapter = found
    return await _check(rt, site, adapter)


async def _check(rt: Runtime, site: SiteConfig, adapter: Any) -> str:
    prev = await rt.health.get(site.name)
    t0 = time.perf_counter()
    try:
        health = await asyncio.wait_for(adapter.health(), timeout=site.http.read_timeout + site.http.connect_timeout)
    except (AdapterError, TimeoutError) as exc:
        msg = str(exc) or "no answer in time"
        await store_result(rt, site, prev, None, error=msg, down=isinstance(exc, AuthFailed), latency_ms=None)
        return f"check failed: {msg}"
    latency = (time.perf_counter() - t0) * 1000
    allocations = prev.allocations if prev else None
    accounts = prev.accounts if prev else None
    if (prev is None or prev.ok_at is None or time.time() - (prev.ok_at or 0) > ALLOCATIONS_EVERY
            or allocations is None or accounts is None):
        # allocations are a hint for placement; a failure here is not a health failure
        with contextlib.suppress(AdapterError):
            reported = await adapter.allocations()
            # node hours only: storage units and units the adapter does not know ("unknown",
            # with a note: FirecREST's accounts) say nothing about hours left; an empty
            # answer is unknown, not "none left"
            allocations = {a.project: a.allocated - a.used for a in reported if a.unit == "node_hours"} or None
            accounts = sorted({a.project for a in reported}) or None
    await store_result(rt, site, prev, health, error=None, down=False, latency_ms=latency, allocations=allocations,
                       accounts=accounts)
    return health.state


async def store_result(
    rt: Runtime,
    site: SiteConfig,
    prev: HealthRecord | None,
    health: SiteHealth | None,
    *,
    error: str | None,
    down: bool,
    latency_ms: float | None,
    allocations: dict[str, float] | None = None,
    accounts: list[str] | None = None,
) -> HealthRecord:
    now = time.time()
    rec = next_record(
        site, prev, health, now=now, error=error, down=down, latency_ms=latency_ms, allocations=allocations,
        accounts=accounts,
    )
    await rt.health.put(rec, changes(site, prev, rec, now))
    return rec
