"""Intake on the event loop writes exactly what the threaded RQ path writes, and a worker runs
the submission it enqueued."""

from __future__ import annotations

import msgspec
import pytest
import redis

from broker import queues
from broker.config import validate
from broker.intake import Replay, create_job, create_job_sync
from broker.schemas import JobCreate
from broker.store.connect import async_client, sync_client
from broker.store.keys import Keys
from broker.tasks import entry
from broker.tasks.runtime import Runtime
from broker.worker import Worker

pytestmark = pytest.mark.anyio

BODY = msgspec.convert({"project": "m1", "spec": {"executable": "/bin/true", "resources": {"node_count": 2}}},
                       JobCreate)
VARYING = {b"created_at", b"enqueued_at", b"data", b"description"}  # time, and the job id inside


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _rq_hash(conn: redis.Redis, job_id: str) -> dict[bytes, bytes]:
    return {k: v for k, v in conn.hgetall(f"rq:job:submit-{job_id}").items() if k not in VARYING}


async def test_async_intake_matches_the_threaded_one_and_rq_runs_it(clean_redis: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    settings = validate({"redis_url": clean_redis})
    keys = Keys(settings.namespace)
    r = async_client(clean_redis)
    conn = sync_client(clean_redis)
    try:
        ours = await create_job(r, conn, keys, settings, BODY, "alice")
        theirs = create_job_sync(conn, keys, settings, BODY, "alice")
        # the record, its indexes and the RQ job: the same fields, the same queue entries
        assert {k for k in conn.hgetall(keys.job(ours.id))} == {k for k in conn.hgetall(keys.job(theirs.id))}
        assert _rq_hash(conn, ours.id) == _rq_hash(conn, theirs.id)
        assert conn.lrange("rq:queue:" + queues.SUBMIT, 0, -1) == [f"submit-{ours.id}".encode(),
                                                                   f"submit-{theirs.id}".encode()]
        assert conn.smembers("rq:queues") == {f"rq:queue:{queues.SUBMIT}".encode()}
        for index in (keys.jobs_all, keys.jobs_by_project("m1"), keys.jobs_by_state("NEW")):
            assert conn.zscore(index, ours.id) is not None
        assert conn.hget(keys.job(ours.id), "state") == b"NEW"

        ran: list[str] = []

        async def fake_submit(_rt: Runtime, job_id: str, _runner: str) -> str:
            ran.append(job_id)
            return "ok"

        monkeypatch.setitem(entry.TASKS, queues.SUBMIT_FN, fake_submit)
        q = queues.queue(conn, queues.SUBMIT)
        assert await Worker(settings, "w").main(burst=True) == 0
        assert sorted(ran) == sorted([ours.id, theirs.id])
        assert q.fetch_job(f"submit-{ours.id}").get_status().value == "finished"  # type: ignore[union-attr]
    finally:
        await r.aclose()
        conn.close()


async def test_async_intake_with_an_idempotency_key_replays(clean_redis: str) -> None:
    settings = validate({"redis_url": clean_redis})
    keys = Keys(settings.namespace)
    r = async_client(clean_redis)
    conn = sync_client(clean_redis)
    try:
        idem = keys.idempotency("tok", "k1")
        first = await create_job(r, conn, keys, settings, BODY, "alice", idem, "fp")
        with pytest.raises(Replay) as again:
            await create_job(r, conn, keys, settings, BODY, "alice", idem, "fp")
        assert first.id in str(again.value.raw)
        assert conn.zcard(keys.jobs_all) == 1 and conn.llen("rq:queue:" + queues.SUBMIT) == 1
    finally:
        await r.aclose()
        conn.close()


async def test_a_batched_jobs_rq_job_is_what_rq_itself_writes(clean_redis: str) -> None:
    """The batch writes its first job's RQ submission as RQ records it and the others' from it
    (the id swapped in): each is what RQ's own enqueue writes for that id, but for the times."""
    import zlib

    from broker.intake import BatchItem, create_jobs

    settings = validate({"redis_url": clean_redis})
    keys = Keys(settings.namespace)
    r = async_client(clean_redis)
    conn = sync_client(clean_redis)
    try:
        batch = await create_jobs(r, conn, keys, settings, [BatchItem(BODY)] * 3, "alice")
        theirs = create_job_sync(conn, keys, settings, BODY, "alice")
        for job in batch:
            assert not isinstance(job, Replay)
            assert _rq_hash(conn, job.id) == _rq_hash(conn, theirs.id)
            mine = conn.hgetall(f"rq:job:submit-{job.id}")
            ref = conn.hgetall(f"rq:job:submit-{theirs.id}")
            assert mine[b"description"] == ref[b"description"].replace(theirs.id.encode(), job.id.encode())
            assert zlib.decompress(mine[b"data"]) == zlib.decompress(ref[b"data"]).replace(
                theirs.id.encode(), job.id.encode())
            assert conn.hgetall(keys.job(job.id)).keys() == conn.hgetall(keys.job(theirs.id)).keys()
        assert conn.lrange("rq:queue:" + queues.SUBMIT, 0, -1) == [f"submit-{j.id}".encode()
                                                                   for j in [*batch, theirs]]  # type: ignore[union-attr]
    finally:
        await r.aclose()
        conn.close()


async def test_rq_runs_batched_submissions(clean_redis: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from broker.intake import BatchItem, create_jobs

    settings = validate({"redis_url": clean_redis})
    keys = Keys(settings.namespace)
    r = async_client(clean_redis)
    conn = sync_client(clean_redis)
    try:
        jobs = await create_jobs(r, conn, keys, settings, [BatchItem(BODY)] * 3, "alice")
        ids = [j.id for j in jobs]  # type: ignore[union-attr]
        ran: list[str] = []

        async def fake_submit(_rt: Runtime, job_id: str, _runner: str) -> str:
            ran.append(job_id)
            return "ok"

        monkeypatch.setitem(entry.TASKS, queues.SUBMIT_FN, fake_submit)
        assert await Worker(settings, "w").main(burst=True) == 0
        assert sorted(ran) == sorted(ids)
    finally:
        await r.aclose()
        conn.close()


def test_only_the_per_job_fields_differ_between_jobs_of_one_moment() -> None:
    """A batch writes the record's other fields once, from its first job: they must not depend
    on the job (a field added to the record that does belongs in PER_JOB_FIELDS)."""
    from broker.schemas import PlacementHints
    from broker.store.jobs import PER_JOB_FIELDS, initial_fields, per_job_fields

    other = msgspec.convert({"executable": "/bin/false", "name": "x", "arguments": ["1"]}, type(BODY.spec))
    a = initial_fields("j1", "m1", BODY.spec, None, "owner", 1_700_000_000.5)
    b = initial_fields("j2", "m2", other, PlacementHints(site="alpha"), "owner", 1_700_000_000.5)
    assert {k for k in a if a[k] != b[k]} == set(PER_JOB_FIELDS)
    assert tuple(b[k] for k in PER_JOB_FIELDS) == per_job_fields("j2", "m2", other, PlacementHints(site="alpha"))


def test_new_job_ids_are_unique_and_shaped_as_one_at_a_time() -> None:
    from broker.store.jobs import new_job_id, new_job_ids

    ids = new_job_ids(1000)
    assert len(set(ids)) == 1000
    assert {len(i) for i in ids} == {len(new_job_id())} and all(i.startswith("j") for i in ids)
