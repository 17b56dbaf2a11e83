"""The mover (broker/tasks/archive.py) against a real Redis and a real history database (a
SQLite file, and a PostgreSQL server the tests start): final jobs past their retention leave
Redis with every key that names them, arrive in the database whole, and are never lost or
doubled by a crash between the copy and the delete."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from broker.config import Settings, validate
from broker.store.history import HistoryDB, HistoryUnavailable
from broker.store.jobs import job_from_hash
from broker.store.keys import Keys
from broker.tasks import archive
from broker.tasks.runtime import Runtime
from tests.support.history import Made, make_final

HOUR = 3600.0


def settings_for(redis_url: str, history_url: str, **history: Any) -> Settings:
    return validate({"redis_url": redis_url, "history": {"url": history_url, "retention": "1h", **history}})


def run_mover(settings: Settings, db: HistoryDB | None = None) -> str:
    async def go() -> str:
        rt = Runtime(settings)
        try:
            return await archive.Mover(rt, db or rt.history).run()  # type: ignore[arg-type]
        finally:
            await rt.aclose()

    return asyncio.run(go())


def history(settings: Settings, fn: str, *args: Any, **kw: Any) -> Any:
    async def go() -> Any:
        db = HistoryDB(settings.history.url, settings.namespace)
        try:
            return await getattr(db, fn)(*args, **kw)
        finally:
            await db.aclose()

    return asyncio.run(go())


def mentions(r: redis.Redis, job_id: str) -> list[str]:
    """Every key of the broker's namespace that names the job: as its name, a member, a field.
    A site's ``done`` set (the last minutes' throughput, trimmed by time) is left to trim itself."""
    found = []
    for key in r.scan_iter("superfed:*"):
        name = key.decode()
        kind = r.type(key).decode()
        named = (job_id in name
                 or (kind == "zset" and ":done:" not in name and r.zscore(key, job_id) is not None)
                 or (kind == "hash" and r.hexists(key, job_id))
                 or (kind == "set" and r.sismember(key, job_id)))
        if named:
            found.append(name)
    return found


def test_old_final_jobs_move_with_every_key_and_read_back_the_same(clean_redis: str, history_url: str) -> None:
    s = settings_for(clean_redis, history_url)
    now = time.time()
    old = make_final(clean_redis, s, [
        Made("COMPLETED", ended=now - 2 * HOUR, nodes=4),
        Made("FAILED", project="m2", site="beta", ended=now - 3 * HOUR),
        Made("CANCELED", site=None, ran=None, ended=now - 5 * HOUR),  # never placed
    ])
    recent = make_final(clean_redis, s, [Made("COMPLETED", ended=now - 60)])  # within the retention
    r = redis.Redis.from_url(clean_redis)
    k = Keys()
    # a job the sweeper noted once, and a try at another site: their entries must go too
    r.hset(k.sweep_suspects, old[0], "1")
    r.hset(k.assigned("gamma"), old[1], "1")
    r.hset(k.job(old[1]), "attempts", '[{"site":"gamma","at":"2026-01-01T00:00:00Z","outcome":"rejected"}]')
    before = {jid: r.hgetall(k.job(jid)) for jid in old}
    assert all(mentions(r, jid) for jid in old)

    assert run_mover(s) == "3 final jobs moved to the history"

    for jid in old:
        assert mentions(r, jid) == [], jid
        got = history(s, "get", jid)
        assert got == {f.decode(): v.decode() for f, v in before[jid].items()}  # the whole record
        assert job_from_hash(got).id == jid
    assert r.exists(k.job(recent[0])) and history(s, "get", recent[0]) is None
    assert history(s, "count") == 3
    assert run_mover(s) == "0 final jobs moved to the history"  # nothing left to move


def test_unfinished_and_long_running_jobs_stay(clean_redis: str, history_url: str) -> None:
    """A job created long ago that ended a moment ago is not due; nor is any unfinished job."""
    s = settings_for(clean_redis, history_url, batch=1)
    now = time.time()
    long_run = make_final(clean_redis, s, [Made("COMPLETED", ended=now - 10, ran=5 * HOUR)])
    due = make_final(clean_redis, s, [Made("COMPLETED", ended=now - 2 * HOUR)])
    r = redis.Redis.from_url(clean_redis, decode_responses=True)
    k = Keys()
    # made before the due one but not due: the mover steps over it (batch=1) to reach the next
    r.zadd(k.jobs_by_state("COMPLETED"), {long_run[0]: 1.0})
    unfinished = make_final(clean_redis, s, [Made("COMPLETED", ended=now - 2 * HOUR)])
    r.hset(k.job(unfinished[0]), "state", "ACTIVE")  # as if still running (and in no final index)
    r.zrem(k.jobs_by_state("COMPLETED"), unfinished[0])
    r.zadd(k.jobs_by_state("ACTIVE"), {unfinished[0]: 1.0})

    assert run_mover(s) == "1 final jobs moved to the history"
    assert history(s, "get", due[0]) is not None and not r.exists(k.job(due[0]))
    assert r.exists(k.job(long_run[0])) and history(s, "get", long_run[0]) is None
    assert r.exists(k.job(unfinished[0])) and history(s, "get", unfinished[0]) is None


class FailingDB(HistoryDB):
    """The database refuses the batch (full disk, a restart): nothing may leave Redis."""

    async def upsert(self, rows: Any, archived_at: float) -> None:
        raise HistoryUnavailable("the test's database is away")


def test_nothing_leaves_redis_when_the_database_refuses(clean_redis: str, tmp_path: Any) -> None:
    s = settings_for(clean_redis, f"sqlite://{tmp_path / 'h.db'}")
    ids = make_final(clean_redis, s, [Made("COMPLETED", ended=time.time() - 2 * HOUR)])
    r = redis.Redis.from_url(clean_redis)
    keys_before = sorted(mentions(r, ids[0]))

    async def go() -> None:
        rt = Runtime(s)
        try:
            with pytest.raises(HistoryUnavailable):
                await archive.Mover(rt, FailingDB(s.history.url, s.namespace)).run()
        finally:
            await rt.aclose()

    asyncio.run(go())
    assert sorted(mentions(r, ids[0])) == keys_before and r.hget(f"superfed:job:{ids[0]}", "state") == b"COMPLETED"


def test_a_crash_between_copy_and_delete_neither_loses_nor_doubles(clean_redis: str, history_url: str) -> None:
    s = settings_for(clean_redis, history_url)
    ids = make_final(clean_redis, s, [Made("COMPLETED", ended=time.time() - 2 * HOUR) for _ in range(3)])
    r = redis.Redis.from_url(clean_redis)

    class CrashAfterCopy(HistoryDB):
        async def upsert(self, rows: Any, archived_at: float) -> None:
            await super().upsert(rows, archived_at)
            raise SystemExit("killed after the commit, before the delete")

    async def crash() -> None:
        rt = Runtime(s)
        try:
            with pytest.raises(SystemExit):
                await archive.Mover(rt, CrashAfterCopy(s.history.url, s.namespace)).run()
        finally:
            await rt.aclose()

    asyncio.run(crash())
    assert all(r.exists(f"superfed:job:{j}") for j in ids)  # in both now
    assert history(s, "count") == 3
    assert run_mover(s) == "3 final jobs moved to the history"  # the next run finishes the move
    assert history(s, "count") == 3 and not any(r.exists(f"superfed:job:{j}") for j in ids)


def test_a_job_written_after_the_copy_is_copied_again(clean_redis: str, history_url: str) -> None:
    """The delete only takes the hash that was copied: a write in between (a late field) keeps
    the job in Redis until the next run copies what it is now."""
    s = settings_for(clean_redis, history_url)
    ids = make_final(clean_redis, s, [Made("COMPLETED", ended=time.time() - 2 * HOUR)])
    r = redis.Redis.from_url(clean_redis)

    class WriteDuringCopy(HistoryDB):
        async def upsert(self, rows: Any, archived_at: float) -> None:
            await super().upsert(rows, archived_at)
            r.hset(f"superfed:job:{ids[0]}", "message", "written late")

    async def go() -> str:
        rt = Runtime(s)
        try:
            return await archive.Mover(rt, WriteDuringCopy(s.history.url, s.namespace)).run()
        finally:
            await rt.aclose()

    assert asyncio.run(go()) == "0 final jobs moved to the history"
    assert r.exists(f"superfed:job:{ids[0]}")
    assert run_mover(s) == "1 final jobs moved to the history"
    assert history(s, "get", ids[0])["message"] == "written late"


def test_a_worker_runs_the_mover_under_one_lease_when_history_is_on(clean_redis: str, tmp_path: Any) -> None:
    from broker.worker import Worker

    async def wanted(settings: Settings) -> dict[str, Any]:
        w = Worker(settings, name="t")
        w.rt = Runtime(settings)  # what Worker.main makes first
        try:
            return await w._wanted()
        finally:
            await w.rt.aclose()
            w.conn.close()

    on = asyncio.run(wanted(settings_for(clean_redis, f"sqlite://{tmp_path / 'h.db'}", interval="30s")))
    period, fn = on["superfed:lease:archive:all"]
    assert period == 30.0 and getattr(fn, "__self__", None).__class__ is archive.Mover
    off = asyncio.run(wanted(validate({"redis_url": clean_redis, "history": {"enabled": False, "url": "sqlite:x"}})))
    assert not any(":archive:" in k for k in off)
