"""Final jobs made through the broker's own paths (intake's create_job_sync, the state
script's advance), with their times then set where a test wants them (made and ended hours ago, a run
of a known length; the indexes' scores with them), for the history tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
import redis

from broker.config import Settings
from broker.intake import create_job_sync
from broker.schemas import JobCreate
from broker.store.connect import async_client
from broker.store.jobs import JobStore, now_iso
from broker.store.keys import Keys

SPEC: dict[str, Any] = {"executable": "/bin/true", "resources": {"node_count": 1}, "attributes": {"duration": 600}}


@dataclass
class Made:
    state: str  # COMPLETED, FAILED or CANCELED
    project: str = "m1"
    site: str | None = "alpha"  # None: failed before any site took it
    nodes: int = 1
    ran: float | None = 3600.0  # seconds ACTIVE before the final state; None: never seen ACTIVE
    ended: float = 0.0  # unix time of the final state


def make_final(redis_url: str, settings: Settings, jobs: list[Made]) -> list[str]:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    rq_conn = redis.Redis.from_url(redis_url)  # RQ's enqueue wants bytes
    keys = Keys(settings.namespace)
    ids = []
    for m in jobs:
        body = msgspec.convert({"project": m.project, "spec": {**SPEC, "resources": {"node_count": m.nodes}}},
                               JobCreate)
        ids.append(create_job_sync(rq_conn, keys, settings, body, "tester").id)
    rq_conn.close()
    asyncio.run(_advance(redis_url, keys, list(zip(ids, jobs, strict=True))))
    # the times a test wants: the history's entries and the record's update time
    for jid, m in zip(ids, jobs, strict=True):
        h = conn.hgetall(keys.job(jid))
        entries = msgspec.json.decode(h["history"])
        start = m.ended - (m.ran or 0.0)
        for e in entries:
            e["at"] = now_iso(m.ended if e["state"] == m.state else start if e["state"] == "ACTIVE" else start - 60)
        created = start - 120
        conn.hset(keys.job(jid), mapping={"history": msgspec.json.encode(entries).decode(), "updated": repr(m.ended),
                                          "created": repr(created), "created_us": str(int(created * 1_000_000))})
        for index in (keys.jobs_all, keys.jobs_by_project(m.project), keys.jobs_by_state(m.state),
                      *([keys.jobs_by_site(m.site)] if m.site else [])):
            assert conn.zadd(index, {jid: int(created * 1_000_000)}, xx=True, ch=True) == 1  # indexed by creation
    # the submissions RQ would run: not these tests' business
    conn.delete("rq:queue:superfed-submit")
    conn.close()
    return ids


async def _advance(redis_url: str, keys: Keys, todo: list[tuple[str, Made]]) -> None:
    r = async_client(redis_url)
    store = JobStore(r, keys)
    try:
        for jid, m in todo:
            if m.site is not None:
                await store.advance(jid, "QUEUED", fields={"site": m.site, "system": "s1", "native_id": f"n-{jid}"})
                await store.begin_try(jid, m.site, "s1")
                if m.ran is not None:
                    await store.advance(jid, "ACTIVE")
            assert await store.advance(jid, m.state, fields={"message": "done"}) == 1
    finally:
        await r.aclose()
