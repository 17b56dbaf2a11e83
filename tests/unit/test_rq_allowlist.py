"""A worker runs only the broker's own task functions, from JSON: an RQ job forged by hand in
Redis (a queue entry naming ``os.system``, or a pickle that runs code when it is read) is
refused, logged and marked failed, and never executed (issue 11, item 1)."""

from __future__ import annotations

import json
import logging
import os
import pickle
import zlib
from pathlib import Path

import msgspec
import pytest
import redis

from broker import queues, worker
from broker.config import validate
from broker.intake import create_job_sync
from broker.schemas import JobCreate
from broker.store.keys import Keys


class _Touch:
    """Unpickling this runs ``touch path`` (what a pickle payload can do)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.path}",)


def _forge(conn: redis.Redis, queue: str, rq_id: str, data: bytes) -> None:
    """An RQ job hash and queue entry written by hand, as anyone with Redis access could."""
    conn.hset(f"rq:job:{rq_id}", mapping={
        "data": data, "origin": queue, "status": "queued", "created_at": "2026-01-01T00:00:00.000000Z",
        "enqueued_at": "2026-01-01T00:00:00.000000Z", "description": "forged", "timeout": "60",
    })
    conn.sadd("rq:queues", f"rq:queue:{queue}")
    conn.rpush(f"rq:queue:{queue}", rq_id)


def _status(conn: redis.Redis, rq_id: str) -> str:
    return (conn.hget(f"rq:job:{rq_id}", "status") or b"").decode()


def test_forged_jobs_are_refused_and_failed_never_run(clean_redis: str, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    conn = redis.Redis.from_url(clean_redis)
    by_name, by_pickle = tmp_path / "by-name", tmp_path / "by-pickle"
    _forge(conn, queues.SUBMIT, "evil-name", json.dumps(["os.system", None, [f"touch {by_name}"], {}]).encode())
    _forge(conn, queues.CANCEL, "evil-pickle", pickle.dumps(_Touch(by_pickle)))
    # one of the broker's own functions, forged the same way: it runs (the refusals above are
    # the allow-list's doing, not a worker that runs nothing)
    _forge(conn, queues.SUBMIT, "ours", json.dumps([queues.CANCEL_FN, None, ["no-such-job"], {}]).encode())
    with caplog.at_level(logging.INFO):
        assert worker.run(validate({"redis_url": clean_redis}), burst=True, name="allowlist") == 0
    assert not by_name.exists() and not by_pickle.exists()
    assert _status(conn, "evil-name") == "failed" and _status(conn, "evil-pickle") == "failed"
    failed = {q: {m.decode() for m in conn.zrange(f"rq:failed:{q}", 0, -1)} for q in (queues.SUBMIT, queues.CANCEL)}
    assert "evil-name" in failed[queues.SUBMIT] and "evil-pickle" in failed[queues.CANCEL]
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any("evil-name" in m and "os.system" in m for m in refused), refused
    assert any("evil-pickle" in m and "not JSON" in m for m in refused), refused
    assert _status(conn, "ours") == "finished"
    conn.close()


def test_the_api_and_the_worker_speak_json(clean_redis: str) -> None:
    """What intake enqueues is JSON naming an allowed function (no pickle on the wire)."""
    settings = validate({"redis_url": clean_redis})
    conn = redis.Redis.from_url(clean_redis)
    body = msgspec.convert({"project": "m1", "spec": {"executable": "/bin/true"}}, JobCreate)
    job = create_job_sync(conn, Keys(settings.namespace), settings, body, "alice")
    data = conn.hget(f"rq:job:submit-{job.id}", "data")
    assert data is not None and json.loads(zlib.decompress(data)) == [queues.SUBMIT_FN, None, [job.id], {}]
    conn.close()
