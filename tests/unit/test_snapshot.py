"""Snapshot -> placement inputs, read from a real Redis: what placement and the status view
see of a site's circuit (exactly at the threshold), of a stale reading (exactly at the
boundary), of its allocations (through the project -> account mapping), backlog and
throughput."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from broker.api.status import site_status
from broker.config import SiteConfig, validate_site
from broker.health import effective
from broker.placement import PlacementRequest, Policy, SiteView, place
from broker.snapshot import site_views
from broker.store.connect import async_client
from broker.store.health import HealthRecord, HealthStore
from broker.store.jobs import JobStore
from broker.store.keys import Keys
from broker.store.sites import SiteStore

pytestmark = pytest.mark.anyio
THRESHOLD = 3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def cfg(name: str = "alpha", **kw: Any) -> SiteConfig:
    raw = {
        "name": name,
        "kind": "iri",
        "url": "http://127.0.0.1:9",
        "systems": ["polaris"],
        "auth": {"token_env": "NOPE"},
        "circuit_threshold": THRESHOLD,
        "health_interval": 5.0,
        "stale_after": 20.0,
        "limits": {"capacity": 10},
    } | kw
    return validate_site(raw)


class Stores:
    def __init__(self, r: Any) -> None:
        keys = Keys()
        self.r = r
        self.keys = keys
        self.sites = SiteStore(r, keys)
        self.health = HealthStore(r, keys)
        self.jobs = JobStore(r, keys)

    async def views(self) -> dict[str, SiteView]:
        _stored, views = await site_views(self.sites, self.health, self.jobs)
        return {v.name: v for v in views}


@pytest.fixture
async def stores(clean_redis: str) -> AsyncIterator[Stores]:
    r = async_client(clean_redis)
    try:
        yield Stores(r)
    finally:
        await r.aclose()


def record(name: str = "alpha", **kw: Any) -> HealthRecord:
    now = time.time()
    fields: dict[str, Any] = {"state": "up", "checked_at": now, "ok_at": now} | kw
    return HealthRecord(site=name, **fields)


ASK = PlacementRequest(project="m1", nodes=1, walltime=60)


@pytest.mark.parametrize(("failures", "open_"), [(0, False), (THRESHOLD - 1, False), (THRESHOLD, True),
                                                 (THRESHOLD + 1, True)])
async def test_circuit_opens_exactly_at_the_threshold(stores: Stores, failures: int, open_: bool) -> None:
    site = cfg()
    await stores.sites.seed([site])
    await stores.health.put(record(failures=failures), [])
    v = (await stores.views())["alpha"]
    assert v.circuit_open is open_
    assert v.consecutive_failures == failures
    d = place(ASK, [v], Policy(), now=time.time())
    assert (d.chosen is None) is open_
    if open_:
        assert any(f"circuit open after {failures} consecutive failed checks" in r for r in d.ranking[0].reasons)
    # the status view draws the same line: a closed circuit shows the reading, an open one does not
    now = time.time()
    rec = record(failures=failures)
    assert effective(rec, site, now) == ("unknown" if open_ else "up")
    assert site_status(site, rec, now).state == ("unknown" if open_ else "up")
    down = record(failures=failures, state="down")
    assert effective(down, site, now) == "down"


async def test_staleness_boundary_reaches_placement(stores: Stores) -> None:
    site = cfg()
    await stores.sites.seed([site])
    ok_at = time.time() - 100.0
    await stores.health.put(record(ok_at=ok_at, checked_at=ok_at), [])
    v = (await stores.views())["alpha"]
    assert v.checked_at == ok_at and v.stale_after == site.staleness == 20.0
    at_edge = place(ASK, [v], Policy(), now=ok_at + 20.0)
    past = place(ASK, [v], Policy(), now=ok_at + 20.001)
    assert at_edge.chosen == "alpha"
    assert past.chosen is None and "stale after" in past.ranking[0].reasons[0]
    assert site_status(site, record(ok_at=ok_at), ok_at + 20.0).state == "up"
    assert site_status(site, record(ok_at=ok_at), ok_at + 20.001).state == "unknown"
    # a failed check keeps the last successful time: the reading goes stale, not fresh
    await stores.health.put(record(ok_at=ok_at, checked_at=time.time(), failures=1), [])
    assert (await stores.views())["alpha"].checked_at == ok_at


async def test_stale_after_defaults_to_three_intervals(stores: Stores) -> None:
    site = cfg(stale_after=None, health_interval=4.0)
    await stores.sites.seed([site])
    assert (await stores.views())["alpha"].stale_after == 12.0


async def test_never_checked_site_is_unknown(stores: Stores) -> None:
    await stores.sites.seed([cfg()])
    v = (await stores.views())["alpha"]
    assert v.health == "unknown" and v.checked_at is None and not v.circuit_open and v.remaining is None
    assert place(ASK, [v], Policy(), now=time.time()).chosen is None


async def test_allocations_map_projects_through_accounts(stores: Stores) -> None:
    await stores.sites.seed([cfg(accounts={"m1": "acct-one", "m3": "acct-three"})])
    await stores.health.put(record(allocations={"acct-one": 50.0, "m2": 0.0, "other": 9.0}), [])
    v = (await stores.views())["alpha"]
    # m1 through its account; m2 (and any project named like an account) under its own name;
    # m3's account is not reported: no allocation
    assert v.remaining == {"m1": 50.0, "m2": 0.0, "acct-one": 50.0, "other": 9.0}
    now = time.time()
    assert place(ASK, [v], Policy(), now=now).chosen == "alpha"
    m2 = place(PlacementRequest(project="m2", nodes=1, walltime=60), [v], Policy(), now=now)
    assert m2.chosen is None and "no allocation left" in m2.ranking[0].reasons[0]
    m3 = place(PlacementRequest(project="m3", nodes=1, walltime=60), [v], Policy(), now=now)
    assert m3.chosen is None and "has no allocation here" in m3.ranking[0].reasons[0]


async def test_unknown_allocations_filter_nothing(stores: Stores) -> None:
    await stores.sites.seed([cfg()])
    await stores.health.put(record(allocations=None), [])
    v = (await stores.views())["alpha"]
    assert v.remaining is None
    assert place(PlacementRequest(project="anyone", nodes=1, walltime=60), [v], Policy(), now=time.time()).chosen


async def test_backlog_throughput_and_config_fields(stores: Stores) -> None:
    await stores.sites.seed([cfg(), cfg("beta", weight=2.5, draining=True, enabled=False,
                                        limits={"max_nodes": 4, "max_walltime": 600, "capacity": 7})])
    now = time.time()
    for i in range(4):
        await stores.jobs.claim("alpha", f"j{i}")
    await stores.r.zadd(stores.keys.done("alpha"), {"old": now - 400.0, **{f"d{i}": now - 10 for i in range(30)}})
    views = await stores.views()
    a, b = views["alpha"], views["beta"]
    assert a.backlog == 4 and b.backlog == 0
    assert a.throughput == pytest.approx(30 * 60 / 300.0) and b.throughput == 0.0
    assert await stores.r.zscore(stores.keys.done("alpha"), "old") is None  # trimmed with the read
    assert (b.weight, b.draining, b.enabled, b.max_nodes, b.max_walltime, b.capacity) == (2.5, True, False, 4, 600, 7)
    assert (a.kind, a.capacity, a.max_nodes) == ("iri", 10, 1_000_000)
    await stores.health.put(record("beta", state="degraded"), [])
    assert (await stores.views())["beta"].health == "degraded"


def test_placement_request_carries_the_job_and_its_hints() -> None:
    from adapters.psij import JobAttributes, JobSpec, ResourceSpec
    from broker.schemas import PlacementHints
    from broker.snapshot import placement_request

    spec = JobSpec(executable="/bin/true", resources=ResourceSpec(node_count=3), attributes=JobAttributes(duration=900))
    hints = PlacementHints(site="alpha", sites=["alpha", "beta"], exclude=["gamma"], strategy="priority")
    req = placement_request("m7", spec, hints)
    assert (req.project, req.nodes, req.walltime) == ("m7", 3, 900)
    assert (req.site, req.sites, req.exclude, req.strategy) == ("alpha", ["alpha", "beta"], ["gamma"], "priority")
    assert placement_request("m7", spec, hints, walltime=60).walltime == 60
    bare = placement_request("m7", spec, None)
    assert (bare.site, bare.sites, bare.exclude, bare.strategy, bare.walltime) == (None, None, [], None, 900)
