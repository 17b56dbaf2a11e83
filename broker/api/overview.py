"""What an operator's dashboard shows per site beyond its health: the broker's jobs there by
state, recent throughput and failures, and why placement would or would not choose the site now.

Placement's verdict is for a probe job (one node, no walltime, no project): it shows what the
site's own state does (enabled, draining, health, circuit, black-hole guard, backlog and
throughput in the score), not what one job's size, profile or allocation would add."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Controller, Request, get

from broker.api.openapi_docs import api_problems
from broker.metrics import SEP, SITE_JOBS
from broker.placement import PlacementRequest, Policy, place
from broker.snapshot import THROUGHPUT_WINDOW, site_views
from broker.store.jobs import now_iso

PROBE = PlacementRequest(project="", nodes=1, walltime=None)
PROBE_TEXT = "a 1-node job with no walltime, at any site, whatever its project's allocation"
QUEUED, ACTIVE = ("QUEUED", "HELD"), ("ACTIVE",)


class SiteJobCounts(msgspec.Struct):
    """The broker's jobs placed at the site (every project), by state."""

    queued: int  # QUEUED or HELD at the facility
    active: int
    completed: int
    failed: int
    canceled: int


class SitePlacementNow(msgspec.Struct):
    eligible: bool
    rank: int | None  # 1 = the site the probe job would be sent to first; None when ineligible
    score: float | None
    reasons: list[str]  # why it is (the score's terms) or is not eligible


class SiteOverview(msgspec.Struct):
    site: str
    jobs: SiteJobCounts
    backlog: int  # unfinished broker jobs placed there (placement's backlog)
    throughput_per_min: float  # jobs finished there per minute over the last window_s
    failure_rate: float | None  # failed / (completed + failed) of the jobs finished there; None before any
    demoted: str | None  # the black-hole guard's reason, None when not demoted
    placement: SitePlacementNow


class Overview(msgspec.Struct):
    generated_at: str
    window_s: float  # the throughput window
    strategy: str
    probe: str  # the job placement's verdict is for, in words
    sites: list[SiteOverview]


def _counts(raw: dict[Any, Any], site: str) -> SiteJobCounts:
    by_state: dict[str, int] = {}
    for field, n in raw.items():
        state, _, at = _text(field).partition(SEP)
        if at == site:
            by_state[state] = by_state.get(state, 0) + int(n)
    return SiteJobCounts(
        queued=sum(by_state.get(s, 0) for s in QUEUED),
        active=sum(by_state.get(s, 0) for s in ACTIVE),
        completed=by_state.get("COMPLETED", 0),
        failed=by_state.get("FAILED", 0),
        canceled=by_state.get("CANCELED", 0),
    )


def _text(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


class OverviewController(Controller):
    path = "/api/v1/overview"
    tags = ["status"]

    @get("/", operation_id="getOverview", summary="Per site: jobs by state, throughput, failures, placement now",
         responses=api_problems())
    async def overview(self, request: Request[Any, Any, Any]) -> Overview:
        st = request.app.state
        pc = st.settings.placement
        _, views = await site_views(st.sites, st.health, st.jobs, pc)
        raw = await st.redis.hgetall(st.rkeys.metrics(SITE_JOBS))
        now = time.time()
        # allocations are per project: the probe has none, so they are left out of its verdict
        decision = place(PROBE, [msgspec.structs.replace(v, remaining=None) for v in views],
                         Policy(strategy=pc.strategy, priority=pc.priority), now=now)
        order = decision.eligible
        ranking = {r.site: r for r in decision.ranking}
        sites = []
        for v in views:
            counts = _counts(raw, v.name)
            finished = counts.completed + counts.failed
            r = ranking[v.name]
            sites.append(SiteOverview(
                site=v.name,
                jobs=counts,
                backlog=v.backlog,
                throughput_per_min=round(v.throughput, 3),
                failure_rate=round(counts.failed / finished, 4) if finished else None,
                demoted=v.demoted,
                placement=SitePlacementNow(
                    eligible=r.eligible,
                    rank=order.index(v.name) + 1 if r.eligible else None,
                    score=r.score,
                    reasons=list(r.reasons),
                ),
            ))
        return Overview(generated_at=now_iso(now), window_s=THROUGHPUT_WINDOW, strategy=decision.strategy,
                        probe=PROBE_TEXT, sites=sites)
