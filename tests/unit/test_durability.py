"""What the README promises of a clean Redis stop: nothing accepted is lost. A job written by
intake (one MULTI/EXEC: record, indexes, RQ submission, idempotency answer) to a private
redis-server with AOF and its ACL user, then SIGTERM and a restart on the same files: it is all
still there. (The SIGKILL side, "at most the last second", is the redis-sigkill drill.)"""

from __future__ import annotations

import signal
from pathlib import Path

import msgspec
import redis

from broker.config import validate
from broker.demo import new_redis_password
from broker.intake import create_job_sync
from broker.queues import SUBMIT, queue
from broker.schemas import JobCreate
from broker.store.keys import Keys
from tests.support.servers import free_port, start_redis

BODY = msgspec.convert({"project": "m1", "spec": {"executable": "/bin/true"}}, JobCreate)


def test_a_clean_redis_restart_keeps_every_accepted_job(tmp_path: Path) -> None:
    port, password = free_port(), new_redis_password()
    proc, url = start_redis(tmp_path, port=port, aof=True, password=password)
    keys = Keys()
    settings = validate({"redis_url": url})
    try:
        with redis.Redis.from_url(url) as conn:
            plain = create_job_sync(conn, keys, settings, BODY, "t").id
            keyed = create_job_sync(conn, keys, settings, BODY, "t", keys.idempotency("tok", "k"), "fp").id
        proc.signal(signal.SIGTERM)  # a clean stop: Redis writes and fsyncs its AOF, then exits
        proc.proc.wait(30)
    finally:
        proc.stop()
    again, _ = start_redis(tmp_path, port=port, aof=True, password=password)
    try:
        with redis.Redis.from_url(url, decode_responses=True) as r:
            for jid in (plain, keyed):
                assert r.hget(keys.job(jid), "state") == "NEW", f"{jid}'s record is gone"
                assert r.zscore(keys.jobs_by_state("NEW"), jid) is not None
            assert r.get(keys.idempotency("tok", "k")) is not None
        with redis.Redis.from_url(url) as conn:
            assert sorted(queue(conn, SUBMIT).job_ids) == sorted([f"submit-{plain}", f"submit-{keyed}"])
        assert "NOPERM" not in (tmp_path / "redis.log").read_text()
    finally:
        again.stop()
