"""The worker (broker/worker.py) against a real Redis: jobs run together on its loop and are
settled as RQ settles them; a dead worker's claimed jobs are taken over and run once; a worker
that cannot write its lease stops taking jobs, loudly; a worker that lost a job cannot send it;
each periodic task has one owner, and a dead owner's tasks move to another worker."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import pytest
import redis

from broker import queues
from broker.config import Settings, validate
from broker.intake import create_job_sync
from broker.schemas import JobCreate
from broker.store.connect import sync_client
from broker.store.keys import Keys
from broker.tasks import entry, submit, sweep
from broker.tasks.runtime import Runtime
from broker.worker import Worker

pytestmark = pytest.mark.anyio

BODY = msgspec.convert({"project": "m1", "spec": {"executable": "/bin/true", "resources": {"node_count": 1}}},
                       JobCreate)
KEYS = Keys()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(clean_redis: str) -> Settings:
    return validate({"redis_url": clean_redis})


@pytest.fixture
def conn(clean_redis: str) -> redis.Redis:
    c = sync_client(clean_redis)
    yield c  # type: ignore[misc]
    c.close()


def _enqueue(conn: redis.Redis, settings: Settings, n: int) -> list[str]:
    return [create_job_sync(conn, KEYS, settings, BODY, "alice").id for _ in range(n)]


async def _until(check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture
async def workers(settings: Settings) -> AsyncIterator[Callable[[str], Worker]]:
    """Start workers on the test's loop; every one is stopped (and awaited) at the end."""
    started: list[tuple[Worker, asyncio.Task[int]]] = []

    def start(name: str) -> Worker:
        w = Worker(settings, name)
        started.append((w, asyncio.create_task(w.main())))
        return w

    yield start
    for w, task in started:
        if not task.done():
            w.request_stop()
            w.request_stop()  # cold: do not wait for a stuck fake task
    for _w, task in started:
        await asyncio.wait_for(task, 30)


def _status(conn: redis.Redis, rq_id: str) -> str:
    return queues.queue(conn, queues.SUBMIT).fetch_job(rq_id).get_status().value  # type: ignore[union-attr]


async def test_jobs_run_together_once_each_and_are_settled_as_rq_would(
    settings: Settings, conn: redis.Redis, workers: Callable[[str], Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _enqueue(conn, settings, 5)
    ran: list[str] = []
    running = most = 0

    async def fake_run(_rt: Runtime, job_id: str, runner: str) -> str:
        nonlocal running, most
        assert conn.hget(KEYS.claims, queues.submit_rq_id(job_id)) == runner.encode()  # claimed while it runs
        assert runner.startswith("w1/")
        ran.append(job_id)
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.3)
        running -= 1
        if job_id == ids[2]:
            raise submit.TryLater("no eligible site yet")
        return "submitted"

    monkeypatch.setitem(entry.TASKS, queues.SUBMIT_FN, fake_run)
    workers("w1")
    q = queues.queue(conn, queues.SUBMIT)
    await _until(lambda: len(ran) == 5 and not conn.hlen(KEYS.claims)
                 and _status(conn, queues.submit_rq_id(ids[0])) == "finished", "all five ran and were settled")
    assert sorted(ran) == sorted(ids)  # each exactly once
    assert most == 5  # together, not one after the other
    assert conn.llen(q.key) == 0
    for jid in ids:
        rq_id = queues.submit_rq_id(jid)
        if jid == ids[2]:  # retried with RQ's backoff, one try used
            assert _status(conn, rq_id) in ("scheduled", "queued", "started")
            job = q.fetch_job(rq_id)
            assert job is not None and job.retries_left == settings.worker.submit_retries - 1
        else:
            assert _status(conn, rq_id) == "finished"
            assert rq_id in q.finished_job_registry.get_job_ids()


async def test_two_workers_taking_queued_jobs_together_take_each_once(settings: Settings, conn: redis.Redis) -> None:
    """Several jobs per take: both workers read the same ids at the head of the queue and race
    for them; every job is taken by exactly one, and claimed for that one."""
    rq_ids = {queues.submit_rq_id(j) for j in _enqueue(conn, settings, 60)}
    a, b = Worker(settings, "a"), Worker(settings, "b")
    start = threading.Barrier(2)

    def drain(w: Worker) -> list[str]:
        start.wait()
        out: list[str] = []
        while got := w._take_queued(8):
            assert all(claimed for _j, _q, claimed in got)
            out += [job.id for job, _q, _c in got]
        return out

    took_a, took_b = await asyncio.gather(asyncio.to_thread(drain, a), asyncio.to_thread(drain, b))
    assert sorted(took_a + took_b) == sorted(rq_ids) and not set(took_a) & set(took_b)
    claims = {k.decode(): v.decode() for k, v in conn.hgetall(KEYS.claims).items()}
    assert claims == {**{i: a.identity for i in took_a}, **{i: b.identity for i in took_b}}
    assert conn.llen(queues.queue(conn, queues.SUBMIT).key) == 0


async def test_ids_read_before_another_worker_took_them_are_left_to_it(
    settings: Settings, conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b read the queue's head, then a took those jobs (and settled one) before b's MULTI: b
    takes none of them, leaves a's claims as they are and withdraws its claim on the settled
    one (nothing holds that one now but RQ's registries)."""
    rq_ids = [queues.submit_rq_id(j) for j in _enqueue(conn, settings, 4)]
    a, b = Worker(settings, "a"), Worker(settings, "b")
    assert [job.id for job, _q, _c in a._take_queued(4)] == rq_ids
    conn.hdel(KEYS.claims, rq_ids[0])  # a finished and settled that one
    monkeypatch.setattr(b.queues[1], "get_job_ids", lambda offset=0, length=-1: list(rq_ids))  # b's earlier read
    assert b._take_queued(4) == []
    claims = {k.decode(): v.decode() for k, v in conn.hgetall(KEYS.claims).items()}
    assert claims == {i: a.identity for i in rq_ids[1:]}


async def test_a_second_queue_entry_of_a_held_job_is_dropped_not_run(settings: Settings, conn: redis.Redis) -> None:
    job_id = _enqueue(conn, settings, 1)[0]
    rq_id = queues.submit_rq_id(job_id)
    a, b = Worker(settings, "a"), Worker(settings, "b")
    assert [job.id for job, _q, _c in a._take_queued(8)] == [rq_id]
    q = queues.queue(conn, queues.SUBMIT)
    q.enqueue_job(q.fetch_job(rq_id))  # type: ignore[arg-type]  # queued again while a runs it
    assert b._take_queued(8) == []
    assert conn.hget(KEYS.claims, rq_id) == a.identity.encode() and conn.llen(q.key) == 0


async def test_jobs_claimed_when_redis_went_away_are_started_on_the_next_take(
    settings: Settings, conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claimed (out of the queue, in the claims hash) but not read: a live worker's claim is
    never taken over, so the worker itself must not forget them."""
    rq_ids = [queues.submit_rq_id(j) for j in _enqueue(conn, settings, 3)]
    w = Worker(settings, "w")
    fetch = w._fetch

    def broken(ids: list[str]) -> list[object]:
        monkeypatch.setattr(w, "_fetch", fetch)  # once
        raise redis.ConnectionError("gone")

    monkeypatch.setattr(w, "_fetch", broken)
    with pytest.raises(redis.ConnectionError):
        w._take_queued(8)
    assert conn.hlen(KEYS.claims) == 3 and conn.llen(queues.queue(conn, queues.SUBMIT).key) == 0
    assert sorted(job.id for job, _q, _c in w._take_queued(8)) == sorted(rq_ids)


async def test_a_dead_workers_claimed_jobs_are_taken_over_and_run_once(
    settings: Settings, conn: redis.Redis, workers: Callable[[str], Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _enqueue(conn, settings, 3)
    q = queues.queue(conn, queues.SUBMIT)
    # "ghost" took two jobs (as the worker does: out of the queue, claimed, status started) and was
    # killed: its lease is gone, its claims are left behind. So did a w1 of an earlier start (the
    # same name, another token): its claim is not the new w1's.
    for jid in ids[:2]:
        rq_id = queues.submit_rq_id(jid)
        job = q.fetch_job(rq_id)
        assert job is not None
        q.remove(rq_id)
        with conn.pipeline() as p:
            p.hset(KEYS.claims, rq_id, "ghost/0123" if jid == ids[0] else "w1/an-earlier-start")
            job.prepare_for_execution("ghost", p)
            p.execute()
    ran: list[tuple[str, str]] = []

    async def fake_run(_rt: Runtime, job_id: str, runner: str) -> str:
        ran.append((job_id, runner))
        return "submitted"

    monkeypatch.setitem(entry.TASKS, queues.SUBMIT_FN, fake_run)
    workers("w1")
    await _until(lambda: len(ran) == 3 and not conn.hlen(KEYS.claims), "the ghost's jobs were taken over and ran")
    await asyncio.sleep(1.0)  # a second takeover round would run them again: it must not
    assert sorted(job_id for job_id, _ in ran) == sorted(ids)
    assert {runner.partition("/")[0] for _, runner in ran} == {"w1"} and "w1/an-earlier-start" not in dict(ran).values()
    for jid in ids:
        assert _status(conn, queues.submit_rq_id(jid)) == "finished"


async def test_a_worker_that_cannot_write_its_lease_takes_no_jobs_and_says_so(
    settings: Settings, conn: redis.Redis, workers: Callable[[str], Worker], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    async def fake_run(_rt: Runtime, job_id: str, runner: str) -> str:
        ran.append(job_id)
        return "submitted"

    monkeypatch.setitem(entry.TASKS, queues.SUBMIT_FN, fake_run)
    # the lease key is unwritable for the worker (the wrong type: every write to it fails)
    conn.hset(KEYS.worker_lease("w1"), "not", "a lease")
    caplog.set_level(logging.ERROR, logger="superfed.worker")
    w = workers("w1")
    ids = _enqueue(conn, settings, 2)
    await _until(lambda: any("no lease" in r.getMessage() for r in caplog.records), "an error about the lease")
    await asyncio.sleep(1.5)  # a worker that went on regardless would have run them by now
    assert ran == [] and not w.healthy
    assert conn.llen(queues.queue(conn, queues.SUBMIT).key) == 2  # still queued, nobody's claim
    conn.delete(KEYS.worker_lease("w1"))  # writable again: the worker takes its lease back, then the jobs
    await _until(lambda: sorted(ran) == sorted(ids), "the jobs ran once the lease could be written")


async def test_a_worker_that_lost_the_job_to_a_takeover_sends_nothing(settings: Settings, conn: redis.Redis) -> None:
    job_id = _enqueue(conn, settings, 1)[0]
    rq_id = queues.submit_rq_id(job_id)
    conn.hset(KEYS.claims, rq_id, "w2/b")  # w2 took it over
    rt = Runtime(settings)
    try:
        assert not await rt.jobs.begin_try(job_id, "nersc", "perlmutter", rq_id=rq_id, runner="w1/a")
        assert conn.hget(KEYS.job(job_id), "inflight") is None  # nothing marked, nothing claimed
        assert conn.hlen(KEYS.assigned("nersc")) == 0
        assert await rt.jobs.begin_try(job_id, "nersc", "perlmutter", rq_id=rq_id, runner="w2/b")
        record = await rt.jobs.record(job_id)
        assert record is not None and record.inflight is not None
        assert (record.inflight.site, record.inflight.system) == ("nersc", "perlmutter")
    finally:
        await rt.aclose()


SITE = {"name": "gamma", "kind": "iri", "url": "http://127.0.0.1:9/api/v1", "systems": ["s1"],
        "auth": {"token_env": "SUPERFED_TEST_NO_SUCH_TOKEN"}, "health_interval": 0.2, "poll_interval": 0.2}


async def test_each_periodic_task_has_one_owner_and_moves_when_it_dies(clean_redis: str, conn: redis.Redis) -> None:
    settings = validate({"redis_url": clean_redis, "sites": [SITE]})
    leases = [KEYS.lease("health", "gamma"), KEYS.lease("poll", "gamma"), KEYS.lease("takeover", "all"),
              KEYS.lease("promote", "all"), KEYS.lease("sweep", "all")]
    a, b = Worker(settings, "a"), Worker(settings, "b")
    ta = asyncio.create_task(a.main())
    await _until(lambda: all(conn.get(k) for k in leases), "worker a holds every periodic lease")
    tb = asyncio.create_task(b.main())
    await _until(lambda: b.healthy, "worker b is up")
    await asyncio.sleep(1.5)  # a few lease rounds of b
    assert set(a.owned) == set(leases) and not b.owned
    a_token = conn.get(leases[0])
    # a dies without a word (its loop stops renewing): b takes every task over once the leases run out
    a.leases.token = "a-is-dead"
    for task in (a._keeper,):
        task.cancel()
    for _p, runner in list(a.owned.values()):
        runner.cancel()
    await _until(lambda: set(b.owned) == set(leases), "worker b took the periodic tasks over",
                 timeout=settings.worker.abandoned_after + 5)
    assert all(conn.get(k) not in (None, a_token) for k in leases)
    # b checks gamma's health now (it fails: nothing listens there, which is recorded)
    await _until(lambda: conn.get(KEYS.health("gamma")) is not None, "a health record for gamma")
    for w in (a, b):
        w.request_stop()
        w.request_stop()
    await asyncio.wait_for(asyncio.gather(ta, tb), 30)


async def test_the_sweeper_enqueues_a_lost_submission_again_and_leaves_held_ones(
    settings: Settings, conn: redis.Redis
) -> None:
    lost, claimed, queued = _enqueue(conn, settings, 3)
    q = queues.queue(conn, queues.SUBMIT)
    q.fetch_job(queues.submit_rq_id(lost)).delete()  # type: ignore[union-attr]
    q.remove(queues.submit_rq_id(claimed))  # a worker took it: out of the queue, claimed
    conn.hset(KEYS.claims, queues.submit_rq_id(claimed), "w1/t")
    old = time.time() - sweep.GRACE - 60
    for jid in (lost, claimed, queued):  # accepted long ago
        conn.zadd(KEYS.jobs_by_state("NEW"), {jid: int(old * 1_000_000)}, xx=True)
    rt = Runtime(settings)
    try:
        await sweep.run(rt, conn)
        assert q.get_job_ids() == [queues.submit_rq_id(queued)]  # one sighting is not enough
        await sweep.run(rt, conn)
        assert q.get_job_ids() == [queues.submit_rq_id(queued), queues.submit_rq_id(lost)]
        await sweep.run(rt, conn)  # and never twice
        assert q.get_job_ids() == [queues.submit_rq_id(queued), queues.submit_rq_id(lost)]
    finally:
        await rt.aclose()


async def test_a_warm_stop_keeps_the_lease_until_its_jobs_end(
    settings: Settings, conn: redis.Redis, workers: Callable[[str], Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping worker finishing a job longer than its lease keeps renewing the lease: the
    others must not take the job over (the drill saw them ask the facility a second time)."""
    [jid] = _enqueue(conn, settings, 1)
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow_run(_rt: Runtime, job_id: str, runner: str) -> str:
        started.set()
        await release.wait()
        return "submitted"

    monkeypatch.setitem(entry.TASKS, queues.SUBMIT_FN, slow_run)
    w = workers("w1")
    await asyncio.wait_for(started.wait(), 20)
    w.request_stop()  # warm: the job under way finishes first
    lease = KEYS.worker_lease("w1")
    # past the lease's whole length (abandoned_after, default 3 s) the lease is still there
    deadline = time.monotonic() + settings.worker.abandoned_after * 1.5
    while time.monotonic() < deadline:
        assert conn.exists(lease), "the stopping worker's lease ran out while its job ran"
        await asyncio.sleep(0.2)
    assert conn.hget(KEYS.claims, queues.submit_rq_id(jid)) is not None  # still its job
    release.set()
    await _until(lambda: not conn.exists(lease), "the worker gone once its job ended (its lease released)")
