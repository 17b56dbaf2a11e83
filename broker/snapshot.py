"""The picture placement decides on: every site's config, health and counters, read from
Redis in a few round trips. Used by the workers and by the placement preview alike."""

from __future__ import annotations

import time

import msgspec

from adapters.psij import JobSpec
from broker.config import PlacementConfig, SiteConfig
from broker.health import HealthRecord, circuit_open
from broker.placement import PlacementRequest, SiteView
from broker.schemas import PlacementHints
from broker.store import outcomes
from broker.store.health import HealthStore
from broker.store.jobs import JobStore
from broker.store.sitecache import site_cache
from broker.store.sites import SiteStore, StoredSite

_health_dec = msgspec.json.Decoder(HealthRecord)


THROUGHPUT_WINDOW = 300.0  # seconds of finished jobs behind "jobs/min finished"


async def site_views(
    sites: SiteStore, health: HealthStore, jobs: JobStore, guard: PlacementConfig | None = None
) -> tuple[list[StoredSite], list[SiteView]]:
    # two round trips: the configs (one GET while sites:version is unchanged, shared by
    # concurrent callers), then health, backlog, throughput and the black-hole record of every
    # site in one pipeline
    guard = guard or PlacementConfig()
    stored = await site_cache(sites).all()
    names = [s.config.name for s in stored]
    k = jobs.keys
    now = time.time()
    async with jobs.r.pipeline(transaction=False) as p:
        if names:
            p.mget([k.health(n) for n in names])
        for n in names:
            p.hlen(k.assigned(n))
        for n in names:
            p.zremrangebyscore(k.done(n), "-inf", now - THROUGHPUT_WINDOW)
            p.zcard(k.done(n))
        for n in names:
            p.lrange(k.outcomes(n), 0, guard.demote_last - 1)
        res = await p.execute() if names else []
    records = {
        n: (_health_dec.decode(raw) if raw else None) for n, raw in zip(names, res[0] if names else [], strict=True)
    }
    backlogs = {n: int(c) for n, c in zip(names, res[1 : 1 + len(names)], strict=True)}
    done = res[1 + len(names) : 1 + 3 * len(names)]
    rates = {n: int(done[2 * i + 1]) * 60.0 / THROUGHPUT_WINDOW for i, n in enumerate(names)}
    latest = res[1 + 3 * len(names) :]
    demoted = {
        n: outcomes.demotion([x.decode() if isinstance(x, bytes) else x for x in raw], now=now, guard=guard)
        for n, raw in zip(names, latest, strict=True)
    }
    views = []
    for s in stored:
        c = s.config
        rec = records.get(c.name)
        views.append(
            SiteView(
                name=c.name,
                kind=c.kind,
                enabled=c.enabled,
                draining=c.draining,
                weight=c.weight,
                max_nodes=c.limits.max_nodes,
                max_walltime=c.limits.max_walltime,
                capacity=c.limits.capacity,
                health=rec.state if rec else "unknown",
                checked_at=rec.ok_at if rec else None,
                stale_after=c.staleness,
                circuit_open=circuit_open(rec, c),
                consecutive_failures=rec.failures if rec else 0,
                backlog=backlogs.get(c.name, 0),
                throughput=rates.get(c.name, 0.0),
                remaining=_remaining(c, rec.allocations if rec else None),
                demoted=demoted.get(c.name),
            )
        )
    return stored, views


def _remaining(site: SiteConfig, allocations: dict[str, float] | None) -> dict[str, float] | None:
    """Allocations are known per facility account; placement asks per broker project (its
    default account there)."""
    if allocations is None:
        return None
    projects = set(site.accounts) | set(allocations)
    return {p: allocations[site.account_for(p)] for p in projects if site.account_for(p) in allocations}


def placement_request(
    project: str, spec: JobSpec, hints: PlacementHints | None, *, walltime: int | None = None
) -> PlacementRequest:
    return PlacementRequest(
        project=project,
        nodes=spec.nodes,
        walltime=walltime if walltime is not None else spec.attributes.duration,
        site=hints.site if hints else None,
        sites=hints.sites if hints else None,
        exclude=list(hints.exclude) if hints else [],
        strategy=hints.strategy if hints else None,
    )
