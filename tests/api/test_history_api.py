"""The API over jobs moved to the history database (a SQLite file, and a PostgreSQL server the
tests start), against a real Redis: GET, the list and its cursor, cancel, the usage report,
each as if the jobs had stayed in Redis, and each within the token's projects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from litestar.testing import TestClient

from broker.app import create_app
from broker.config import HistoryConfig, Settings
from broker.store.history import HistoryDB, row_from_hash
from broker.store.jobs import now_iso
from broker.tasks import archive
from broker.tasks.runtime import Runtime
from tests.api.conftest import auth, settings_for
from tests.support.history import Made, make_final

HOUR = 3600.0
NOW = time.time()


def with_history(redis_url: str, url: str) -> Settings:
    return msgspec.structs.replace(settings_for(redis_url), history=HistoryConfig(url=url, retention="1h"))


def move(settings: Settings) -> str:
    async def go() -> str:
        rt = Runtime(settings)
        try:
            assert rt.history is not None
            return await archive.Mover(rt, rt.history).run()
        finally:
            await rt.aclose()

    return asyncio.run(go())


@pytest.fixture
def hist(clean_redis: str, history_url: str) -> Iterator[tuple[TestClient, Settings]]:
    s = with_history(clean_redis, history_url)
    with TestClient(create_app(s)) as c:
        yield c, s


def test_an_archived_job_reads_as_before_within_its_project(hist: tuple[TestClient, Settings],
                                                            clean_redis: str) -> None:
    c, s = hist
    m1, m2 = make_final(clean_redis, s, [Made("COMPLETED", ended=NOW - 2 * HOUR),
                                         Made("FAILED", project="m2", ended=NOW - 2 * HOUR)])
    before = {role: {j: c.get(f"/api/v1/jobs/{j}", headers=auth(role)).json() for j in (m1, m2)}
              for role in ("admin", "viewer")}
    assert move(s) == "2 final jobs moved to the history"
    metrics = c.get("/metrics").text  # counted where they are moved
    assert 'superfed_history_moved_total{state="COMPLETED"} 1.0' in metrics
    assert 'superfed_history_moved_total{state="FAILED"} 1.0' in metrics
    for role in ("admin", "viewer"):
        for j in (m1, m2):
            r = c.get(f"/api/v1/jobs/{j}", headers=auth(role))
            assert r.status_code == 200 and r.json() == before[role][j]
    # a token of project m1 never sees m2's archived job, nor learns that it exists
    assert c.get(f"/api/v1/jobs/{m1}", headers=auth("m1-submitter")).status_code == 200
    r = c.get(f"/api/v1/jobs/{m2}", headers=auth("m1-submitter"))
    assert r.status_code == 404 and r.json()["detail"] == f"no job {m2!r}"
    assert c.delete(f"/api/v1/jobs/{m2}", headers=auth("m1-submitter")).status_code == 404
    # cancelling an archived job: what a final job in Redis answers
    r = c.delete(f"/api/v1/jobs/{m1}", headers=auth("submitter"))
    assert r.status_code == 202 and r.json()["state"] == "COMPLETED" and "already COMPLETED" in r.json()["detail"]
    assert c.get("/api/v1/jobs/jnope", headers=auth("admin")).status_code == 404


def _all_pages(c: TestClient, role: str, **params: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(50):
        q = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = c.get("/api/v1/jobs", params=q, headers=auth(role)).json()
        assert len(page["items"]) <= 2
        ids += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return ids
    raise AssertionError("the cursor never ended")


def test_the_list_merges_redis_and_history_in_order_once_each(hist: tuple[TestClient, Settings],
                                                              clean_redis: str) -> None:
    c, s = hist
    made = [Made("COMPLETED", ended=NOW - (9 - i) * HOUR) for i in range(5)]  # archived: created in turn
    made += [Made("FAILED", project="m2", site="beta", ended=NOW - 7.5 * HOUR)]
    old = make_final(clean_redis, s, made)
    assert move(s) == "6 final jobs moved to the history"
    fresh = make_final(clean_redis, s, [Made("COMPLETED", ended=NOW - 60), Made("CANCELED", ended=NOW - 30)])
    newest_first = [*reversed(fresh), old[4], old[3], old[2], old[5], old[1], old[0]]  # by creation
    assert _all_pages(c, "admin") == newest_first
    assert _all_pages(c, "viewer") == newest_first
    # filters, on both sides
    assert _all_pages(c, "admin", project="m2") == [old[5]]
    assert _all_pages(c, "admin", site="beta") == [old[5]]
    assert _all_pages(c, "admin", state="FAILED") == [old[5]]
    assert _all_pages(c, "admin", state="COMPLETED") == [fresh[0], old[4], old[3], old[2], old[1], old[0]]
    assert _all_pages(c, "admin", state="ACTIVE") == []
    # m1's token: m1's jobs, archived or not; never m2's
    assert _all_pages(c, "m1-submitter") == [j for j in newest_first if j != old[5]]
    assert _all_pages(c, "m1-submitter", project="m2") == []
    one = c.get("/api/v1/jobs", params={"limit": 1}, headers=auth("admin")).json()
    assert [j["id"] for j in one["items"]] == [fresh[1]] and one["next_cursor"]


def test_a_job_in_both_places_is_listed_and_counted_once(hist: tuple[TestClient, Settings], clean_redis: str) -> None:
    """A mover stopped between its copy and its delete leaves a job in Redis and in the database."""
    c, s = hist
    jid = make_final(clean_redis, s, [Made("COMPLETED", ended=NOW - 2 * HOUR, nodes=2)])[0]
    raw = redis.Redis.from_url(clean_redis, decode_responses=True).hgetall(f"superfed:job:{jid}")

    async def copy() -> None:
        db = HistoryDB(s.history.url, s.namespace)
        try:
            await db.upsert([row_from_hash(raw)], archived_at=time.time())
        finally:
            await db.aclose()

    asyncio.run(copy())
    assert _all_pages(c, "admin") == [jid]
    u = c.get("/api/v1/usage", headers=auth("admin")).json()
    assert u["totals"]["jobs"] == 1 and u["totals"]["node_hours"] == 2.0


def test_usage_counts_redis_and_history_by_site_and_project(hist: tuple[TestClient, Settings],
                                                            clean_redis: str) -> None:
    c, s = hist
    make_final(clean_redis, s, [
        Made("COMPLETED", nodes=4, ran=HOUR, ended=NOW - 5 * HOUR),  # 4 node-hours
        Made("FAILED", nodes=2, ran=HOUR / 2, ended=NOW - 4 * HOUR),  # 1 node-hour
        Made("CANCELED", site=None, ran=None, ended=NOW - 4 * HOUR),  # never placed, never ran
        Made("COMPLETED", project="m2", site="beta", nodes=8, ran=HOUR / 4, ended=NOW - 3 * HOUR),  # 2
    ])
    assert move(s) == "4 final jobs moved to the history"
    make_final(clean_redis, s, [Made("COMPLETED", nodes=3, ran=HOUR, ended=NOW - 60)])  # 3, still in Redis
    u = c.get("/api/v1/usage", headers=auth("admin")).json()
    assert u["totals"] == {"jobs": 5, "completed": 3, "failed": 1, "canceled": 1, "node_hours": 10.0,
                           "unmeasured": 1}
    rows = {(r["site"], r["project"]): r for r in u["rows"]}
    assert rows[("alpha", "m1")] == {"site": "alpha", "project": "m1", "jobs": 3, "completed": 2, "failed": 1,
                                     "canceled": 0, "node_hours": 8.0, "unmeasured": 0}
    assert rows[(None, "m1")]["canceled"] == 1 and rows[(None, "m1")]["unmeasured"] == 1
    assert rows[("beta", "m2")]["node_hours"] == 2.0
    # the window is the final state's time: [from, to)
    q = {"from": now_iso(NOW - 4.5 * HOUR), "to": now_iso(NOW - 3 * HOUR)}
    assert c.get("/api/v1/usage", params=q, headers=auth("admin")).json()["totals"]["jobs"] == 2
    q = {"from": now_iso(NOW - 2 * HOUR)}
    assert c.get("/api/v1/usage", params=q, headers=auth("admin")).json()["totals"]["node_hours"] == 3.0
    assert c.get("/api/v1/usage", params={"site": "beta"}, headers=auth("admin")).json()["totals"]["jobs"] == 1
    # a token of m1 sees m1's usage only; asking for m2 is refused
    mine = c.get("/api/v1/usage", headers=auth("m1-submitter")).json()
    assert {r["project"] for r in mine["rows"]} == {"m1"} and mine["totals"]["jobs"] == 4
    r = c.get("/api/v1/usage", params={"project": "m2"}, headers=auth("m1-submitter"))
    assert r.status_code == 403 and "m2" in r.json()["detail"]
    assert c.get("/api/v1/usage", params={"project": "m2"}, headers=auth("viewer")).json()["totals"]["jobs"] == 1


@pytest.mark.parametrize(("params", "word"), [
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-11-30T12:00:00"}, "time zone"),
    ({"from": "2026-11-30T12:00:00Z", "to": "2026-11-30T11:00:00Z"}, "after from"),
    ({"to": "2026-13-01"}, "to"),
])
def test_usage_refuses_bad_times_naming_them(client: TestClient, params: dict[str, str], word: str) -> None:
    r = client.get("/api/v1/usage", params=params, headers=auth("admin"))
    assert r.status_code == 400 and word in r.json()["detail"], r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_usage_takes_dates_and_offsets(client: TestClient) -> None:
    r = client.get("/api/v1/usage", params={"from": "2026-11-01", "to": "2026-11-30T13:00:00+01:00"},
                   headers=auth("viewer"))
    assert r.status_code == 200
    assert r.json()["start"] == "2026-11-01T00:00:00.000Z" and r.json()["end"] == "2026-11-30T12:00:00.000Z"


def test_an_unreachable_history_is_a_503_naming_it(clean_redis: str, tmp_path: Path) -> None:
    s = with_history(clean_redis, f"sqlite://{tmp_path}")  # a directory: no database opens there
    with TestClient(create_app(s)) as c:
        r = c.get("/api/v1/jobs/jgone", headers=auth("admin"))
        assert r.status_code == 503 and "history" in r.json()["detail"] and str(tmp_path) in r.json()["detail"]
        assert r.headers["retry-after"] == "5"
        assert c.get("/api/v1/jobs", headers=auth("admin")).status_code == 503
