"""The health rules, pure: what a site's health record is, when a reading is stale, when a
site's circuit is open, what one check makes of the previous record, and which changes are
worth an event.

One module for all of them because three places read health and must agree: the API (status,
sites, metrics), placement's snapshot, and the workers' health checks. Nothing here touches
Redis (``broker.store.health`` stores these records) or a facility.
"""

from __future__ import annotations

from typing import get_args

import msgspec

from adapters.types import ComponentHealth, HealthState, Incident, SiteHealth
from broker.config import SiteConfig

__all__ = [
    "STATES",
    "HealthEvent",
    "HealthRecord",
    "changes",
    "circuit_open",
    "effective",
    "is_stale",
    "next_record",
    "visible_components",
]

# A site's (and a component's) health, best first: the adapters' vocabulary.
STATES: tuple[str, ...] = get_args(HealthState)


class HealthRecord(msgspec.Struct):
    site: str
    state: str  # as checked: up/degraded/down/unknown
    components: list[ComponentHealth] = []
    incidents: list[Incident] = []
    checked_at: float | None = None  # last check, successful or not
    ok_at: float | None = None  # last successful check
    latency_ms: float | None = None
    failures: int = 0  # consecutive failed checks
    error: str | None = None  # why the last check failed
    allocations: dict[str, float] | None = None  # account -> node-hours left
    # every account the facility reported, hours known or not (FirecREST lists names only);
    # None: not reported. Intake refuses a project none of its sites has an account for
    accounts: list[str] | None = None


class HealthEvent(msgspec.Struct):
    site: str
    component: str | None
    state: str
    previous: str | None
    at: float
    detail: str = ""


def accounts_known(rec: HealthRecord | None) -> set[str] | None:
    """The accounts a site's checks found: every one reported, or (a record written before
    accounts were kept) those with node hours; None when not known."""
    if rec is None:
        return None
    if rec.accounts is not None:
        return set(rec.accounts)
    return set(rec.allocations) if rec.allocations is not None else None


def is_stale(ok_at: float | None, stale_after: float, now: float) -> bool:
    """No successful check yet, or the last one older than ``stale_after``: the reading is
    ``unknown``, never silently ``up``. Written so that a NaN age reads stale."""
    return ok_at is None or not now - ok_at <= stale_after


def circuit_open(rec: HealthRecord | None, site: SiteConfig) -> bool:
    """``circuit_threshold`` consecutive failed checks open the circuit: no placement there
    until a check succeeds again (which resets ``failures``)."""
    return rec is not None and rec.failures >= site.circuit_threshold


def effective(rec: HealthRecord | None, site: SiteConfig, now: float) -> str:
    """The state the API shows and placement uses: ``unknown`` when never checked, stale, or
    the circuit is open (``down`` if the facility itself said so, e.g. refused credentials)."""
    if rec is None:
        return "unknown"
    if circuit_open(rec, site):
        return "down" if rec.state == "down" else "unknown"
    if is_stale(rec.ok_at, site.staleness, now):
        return "unknown"
    return rec.state


def visible_components(rec: HealthRecord, site: SiteConfig, now: float) -> list[ComponentHealth]:
    """A stale reading's components are shown as ``unknown`` (with their last detail)."""
    if is_stale(rec.ok_at, site.staleness, now):
        return [ComponentHealth(c.name, "unknown", c.detail) for c in rec.components]
    return rec.components


def next_record(
    site: SiteConfig,
    prev: HealthRecord | None,
    health: SiteHealth | None,
    *,
    now: float,
    error: str | None = None,
    down: bool = False,
    latency_ms: float | None = None,
    allocations: dict[str, float] | None = None,
    accounts: list[str] | None = None,
) -> HealthRecord:
    """What one check makes of the previous record.

    ``health`` is the facility's answer (None when the check failed). A failed check keeps
    the last reading (it goes stale by itself) and counts towards the circuit; ``down`` means
    the facility answered but refused us (credentials): down for us, with the reason."""
    if health is not None:
        return HealthRecord(
            site=site.name,
            state=health.state,
            components=list(health.components),
            incidents=list(health.incidents),
            checked_at=now,
            ok_at=now,
            latency_ms=round(latency_ms or 0.0, 2),
            failures=0,
            error=None,
            allocations=allocations,
            accounts=accounts,
        )
    return HealthRecord(
        site=site.name,
        state="down" if down else (prev.state if prev else "unknown"),
        components=prev.components if prev else [],
        incidents=prev.incidents if prev else [],
        checked_at=now,
        ok_at=now if down else (prev.ok_at if prev else None),
        latency_ms=None,
        failures=(prev.failures if prev else 0) + 1,
        error=error,
        allocations=prev.allocations if prev else None,
        accounts=prev.accounts if prev else None,
    )


def changes(site: SiteConfig, prev: HealthRecord | None, rec: HealthRecord, now: float) -> list[HealthEvent]:
    """One event per site or component whose state changed."""
    events = []
    before = effective(prev, site, now) if prev else None
    after = effective(rec, site, now)
    if before != after:
        events.append(
            HealthEvent(site=site.name, component=None, state=after, previous=before, at=now, detail=rec.error or "")
        )
    old = {c.name: c.state for c in (prev.components if prev else [])}
    for c in rec.components:
        if old.get(c.name) != c.state:
            events.append(
                HealthEvent(
                    site=site.name, component=c.name, state=c.state, previous=old.get(c.name), at=now, detail=c.detail
                )
            )
    return events
