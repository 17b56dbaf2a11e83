"""Intake's view of each site's accounts (broker/store/health.py RecentAccounts): one read of
the health records per second per process, shared by concurrent requests. Pure logic over a
counting stand-in for the store."""

from __future__ import annotations

import asyncio

from broker.health import HealthRecord, accounts_known
from broker.store.health import RecentAccounts


class CountingStore:
    def __init__(self) -> None:
        self.reads: list[list[str]] = []
        self.accounts: dict[str, list[str]] = {"alcf": ["m1"], "cscs": ["m2"]}

    async def many(self, sites: list[str]) -> dict[str, HealthRecord | None]:
        self.reads.append(list(sites))
        await asyncio.sleep(0)  # let concurrent callers pile up behind the read
        return {s: HealthRecord(site=s, state="up", checked_at=0.0, accounts=self.accounts[s])
                if s in self.accounts else None for s in sites}


def test_one_read_a_ttl_shared_by_concurrent_callers() -> None:
    async def go() -> None:
        store = CountingStore()
        recent = RecentAccounts(store, accounts_known, ttl=3600)  # type: ignore[arg-type]
        got = await asyncio.gather(*[recent.get(["alcf", "cscs"]) for _ in range(20)])
        assert all(g == {"alcf": {"m1"}, "cscs": {"m2"}} for g in got)
        assert len(store.reads) == 1  # twenty requests, one MGET
        store.accounts["alcf"] = ["m3"]
        assert await recent.get(["alcf"]) == {"alcf": {"m1"}}  # within the ttl: no read
        assert await recent.get(["gamma"]) == {"gamma": None}  # a site not read yet: read now
        assert len(store.reads) == 2 and set(store.reads[1]) == {"alcf", "cscs", "gamma"}
        assert await recent.get(["alcf"]) == {"alcf": {"m3"}}  # and what changed came with it

    asyncio.run(go())


def test_a_zero_ttl_reads_every_time() -> None:
    async def go() -> None:
        store = CountingStore()
        recent = RecentAccounts(store, accounts_known, ttl=0)  # type: ignore[arg-type]
        await recent.get(["alcf"])
        store.accounts["alcf"] = ["m9"]
        assert await recent.get(["alcf"]) == {"alcf": {"m9"}}
        assert len(store.reads) == 2

    asyncio.run(go())
