"""Batched submissions (broker/tasks/batch.py): one RQ job's worker runs further queued
submissions at once, each exactly once, with RQ's registries as if RQ had run them one by one;
claimed jobs of a worker that dies are retried by RQ's own abandoned-job cleanup."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import msgspec
import pytest
import redis
from rq import SimpleWorker
from rq.job import Job as RQJob

from broker import queues
from broker.config import validate
from broker.intake import create_job_sync
from broker.schemas import JobCreate
from broker.store.connect import sync_client
from broker.store.keys import Keys
from broker.tasks import batch, runtime, submit

BODY = msgspec.convert({"project": "m1", "spec": {"executable": "/bin/true", "resources": {"node_count": 1}}},
                       JobCreate)


@pytest.fixture
def rt(clean_redis: str) -> Iterator[runtime.Runtime]:
    r = runtime.Runtime(validate({"redis_url": clean_redis}))
    prev = runtime._current
    runtime.install(r)
    try:
        yield r
    finally:
        runtime._current = prev
        r.close()


def _enqueue(conn: redis.Redis, rt: runtime.Runtime, n: int) -> list[str]:
    return [create_job_sync(conn, Keys(rt.settings.namespace), rt.settings, BODY, "alice").id for _ in range(n)]


def test_a_batch_runs_each_job_once_and_settles_it_as_rq_would(rt: runtime.Runtime,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    conn = sync_client(rt.settings.redis_url)
    ids = _enqueue(conn, rt, 5)
    ran: list[str] = []
    running = 0
    most = 0

    async def fake_run(_rt: runtime.Runtime, job_id: str) -> str:
        nonlocal running, most
        ran.append(job_id)
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        if job_id == ids[2]:
            raise submit.TryLater("no eligible site yet")
        return "submitted"

    monkeypatch.setattr(submit, "run", fake_run)
    q = queues.queue(conn, queues.SUBMIT)
    assert SimpleWorker([q], connection=conn,
                           serializer=queues.SERIALIZER).work(burst=True)
    assert sorted(ran) == sorted(ids)  # each exactly once
    assert most == 5  # together, not one after the other
    assert conn.llen(q.key) == 0
    assert q.started_job_registry.get_job_ids() == []
    for jid in ids:
        job = RQJob.fetch(f"submit-{jid}", connection=conn,
                           serializer=queues.SERIALIZER)
        if jid == ids[2]:  # retried with RQ's backoff, one try used
            assert job.get_status().value == "scheduled"
            assert job.retries_left == rt.settings.worker.submit_retries - 1
            assert f"submit-{jid}" in q.scheduled_job_registry.get_job_ids()
        else:
            assert job.get_status().value == "finished"
            assert f"submit-{jid}" in q.finished_job_registry.get_job_ids()


def test_claimed_jobs_of_a_dead_worker_are_retried_by_rq(rt: runtime.Runtime) -> None:
    conn = sync_client(rt.settings.redis_url)
    ids = _enqueue(conn, rt, 3)
    claimed = rt.call(batch.claim, rt, 2, "a-worker-that-dies")
    assert [c.job_id for c in claimed] == ids[:2]
    q = queues.queue(conn, queues.SUBMIT)
    # out of the queue, held as started (so no worker dequeues them, and the sweeper sees them held)
    assert [x.decode() for x in conn.lrange(q.key, 0, -1)] == [f"submit-{ids[2]}"]
    assert sorted(q.started_job_registry.get_job_ids()) == sorted(f"submit-{j}" for j in ids[:2])
    assert RQJob.fetch(f"submit-{ids[0]}", connection=conn,
                           serializer=queues.SERIALIZER).get_status().value == "started"
    # nobody renews their heartbeats: once they run out, RQ's maintenance retries them
    q.started_job_registry.cleanup(timestamp=time.time() + rt.settings.worker.abandoned_after + 1)
    assert q.started_job_registry.get_job_ids() == []
    for jid in ids[:2]:
        assert RQJob.fetch(f"submit-{jid}", connection=conn,
                           serializer=queues.SERIALIZER).get_status().value == "scheduled"
        assert f"submit-{jid}" in q.scheduled_job_registry.get_job_ids()
