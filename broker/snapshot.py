"""The picture placement decides on: every site's config, health and counters, read from
Redis in one round trip (two when the configs changed). Used by the workers and by the
placement preview alike."""

from __future__ import annotations

import time

import msgspec

from adapters.psij import JobSpec
from broker.config import PlacementConfig, SiteConfig
from broker.health import HealthRecord, circuit_open
from broker.placement import PlacementRequest, SiteView
from broker.schemas import PlacementHints
from broker.store import outcomes
from broker.store.autopipe import Command
from broker.store.health import HealthStore
from broker.store.jobs import JobStore
from broker.store.sitecache import site_cache
from broker.store.sites import SiteStore, StoredSite

_health_dec = msgspec.json.Decoder(HealthRecord)


THROUGHPUT_WINDOW = 300.0  # seconds of finished jobs behind "jobs/min finished"


async def site_views(
    sites: SiteStore, health: HealthStore, jobs: JobStore, guard: PlacementConfig | None = None
) -> tuple[list[StoredSite], list[SiteView]]:
    # one round trip while the configs are unchanged (shared with whatever else the process
    # sends meanwhile: a worker runs several submissions at once): the configs' version, then
    # health, backlog, throughput and the black-hole record of every site
    guard = guard or PlacementConfig()
    k = jobs.keys
    now = time.time()

    def reads(names: list[str]) -> list[Command]:
        cmds: list[Command] = [("MGET", *[k.health(n) for n in names])] if names else []
        cmds += [("HLEN", k.assigned(n)) for n in names]
        for n in names:
            cmds += [("ZREMRANGEBYSCORE", k.done(n), "-inf", now - THROUGHPUT_WINDOW), ("ZCARD", k.done(n))]
        cmds += [("LRANGE", k.outcomes(n), 0, guard.demote_last - 1) for n in names]
        return cmds

    stored, res = await site_cache(sites).read_with(reads)
    names = [s.config.name for s in stored]
    if not names:
        return stored, []
    m = len(names)
    healths, backlog_counts, done, latest = res[0], res[1 : 1 + m], res[1 + m : 1 + 3 * m], res[1 + 3 * m :]
    done_counts = done[1::2]  # (each after its trim's reply)
    records = {n: (_health_dec.decode(raw) if raw else None) for n, raw in zip(names, healths, strict=True)}
    backlogs = {n: int(c) for n, c in zip(names, backlog_counts, strict=True)}
    rates = {n: int(c) * 60.0 / THROUGHPUT_WINDOW for n, c in zip(names, done_counts, strict=True)}
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
