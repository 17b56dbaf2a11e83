"""``[durability]`` through the API over real redis-servers: ``replica`` waits for a real
replica (202 once it has the job; a 503 naming the job, with Retry-After, when it does not
confirm; the same key again is a 202 once it does), single and batch; ``disk`` refuses to start
on a server that does not fsync before replying, and refuses jobs (503) when the server changes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from litestar.testing import TestClient

from broker import durability
from broker.app import create_app
from broker.config import DurabilityConfig, Settings
from broker.demo import redis_server_args
from broker.procs import Proc
from broker.store.keys import Keys
from tests.api.conftest import auth, settings_for
from tests.support.servers import free_port

SPEC = {"executable": "/bin/true", "resources": {"node_count": 1}, "attributes": {"duration": 60}}
BODY = {"project": "m1", "spec": SPEC}
K = Keys()


def _redis(tmp: Path, port: int, *extra: str) -> Proc:
    exe = shutil.which("redis-server")
    assert exe
    tmp.mkdir(parents=True, exist_ok=True)
    return Proc(redis_server_args(exe, port, tmp, aof=True) + list(extra), port=port,
                log=tmp / "redis.log").wait_ready()


def _settings(port: int, **level: Any) -> Settings:
    s = settings_for(f"redis://127.0.0.1:{port}/0")
    return msgspec.structs.replace(s, allow_unauthenticated_redis=True,  # loopback, the test's own servers
                                   durability=DurabilityConfig(**level))


def _linked(replica_port: int) -> None:
    with redis.Redis(port=replica_port, decode_responses=True) as rr:
        for _ in range(400):
            if rr.info("replication").get("master_link_status") == "up":
                return
            rr.execute_command("PING")
            import time

            time.sleep(0.025)
    raise AssertionError("the replica never linked")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[int, int, list[Proc]]]:
    port, rport = free_port(), free_port()
    procs = [_redis(tmp_path / "primary", port)]
    procs.append(_redis(tmp_path / "replica", rport, "--replicaof", "127.0.0.1", str(port)))
    _linked(rport)
    try:
        yield port, rport, procs
    finally:
        for p in procs:
            p.stop()


def test_replica_level(pair: tuple[int, int, list[Proc]], tmp_path: Path) -> None:
    port, rport, procs = pair
    with TestClient(create_app(_settings(port, level="replica", replicas=1, timeout=0.3))) as c:
        ok = c.post("/api/v1/jobs", json=BODY, headers={**auth("submitter"), "Idempotency-Key": "k1"})
        assert ok.status_code == 202, ok.text
        with redis.Redis(port=rport, decode_responses=True) as rr:  # on the replica when the 202 came
            assert rr.hget(K.job(ok.json()["id"]), "state") == "NEW"
        batch = c.post("/api/v1/jobs/batch", json={"jobs": [BODY, BODY]}, headers=auth("submitter")).json()
        assert [x["status"] for x in batch["results"]] == [202, 202]

        procs[1].stop()  # the replica goes away
        lone = c.post("/api/v1/jobs", json=BODY, headers={**auth("submitter"), "Idempotency-Key": "k2"})
        assert lone.status_code == 503, lone.text
        assert lone.headers["retry-after"] == "2"
        jid = lone.headers["location"].rpartition("/")[2]
        detail = lone.json()["detail"]
        assert f"job {jid} was written to Redis's primary and queued" in detail
        assert "only 0 of the 1 Redis replica(s)" in detail and "same idempotency key" in detail
        with redis.Redis(port=port, decode_responses=True) as r:
            assert r.hget(K.job(jid), "state") == "NEW"  # written and queued, not undone
            assert f"submit-{jid}" in r.lrange("rq:queue:superfed-submit", 0, -1)
        res = c.post("/api/v1/jobs/batch", json={"jobs": [BODY, {**BODY, "project": "m1", "spec": {
            **SPEC, "resources": {"node_count": "x"}}}]}, headers=auth("submitter")).json()["results"]
        assert [x["status"] for x in res] == [503, 422]
        assert "written to Redis's primary and queued" in res[0]["problem"]["detail"]
        # a replay is a promise too: not confirmed, not a 202
        assert c.post("/api/v1/jobs", json=BODY, headers={**auth("submitter"), "Idempotency-Key": "k2"}
                      ).status_code == 503

        procs[1] = _redis(tmp_path / "replica", rport, "--replicaof", "127.0.0.1", str(port))
        _linked(rport)
        again = c.post("/api/v1/jobs", json=BODY, headers={**auth("submitter"), "Idempotency-Key": "k2"})
        assert again.status_code == 202 and again.json()["id"] == jid
        assert again.headers["idempotent-replayed"] == "true"


def test_replica_level_asks_for_as_many_replicas_as_configured(pair: tuple[int, int, list[Proc]]) -> None:
    port, _rport, _procs = pair
    with TestClient(create_app(_settings(port, level="replica", replicas=2, timeout=0.2))) as c:
        r = c.post("/api/v1/jobs", json=BODY, headers=auth("submitter"))
        assert r.status_code == 503 and "only 1 of the 2 Redis replica(s)" in r.json()["detail"]
        assert "another job" in r.json()["detail"]  # no key: say what sending it again does


def test_default_level_does_not_wait(pair: tuple[int, int, list[Proc]]) -> None:
    port, _rport, procs = pair
    procs[1].stop()
    with TestClient(create_app(_settings(port))) as c:
        assert c.post("/api/v1/jobs", json=BODY, headers=auth("submitter")).status_code == 202


def test_disk_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    everysec = _redis(tmp_path / "a", port)
    try:
        with pytest.raises(BaseException) as refused, TestClient(create_app(_settings(port, level="disk"))):
            pass
        errors = refused.value.exceptions if isinstance(refused.value, BaseExceptionGroup) else [refused.value]
        assert [type(e) for e in errors] == [durability.DurabilityError]  # (the lifespan's task group wraps it)
        assert "fsyncs its append-only file everysec (not always)" in str(errors[0])
    finally:
        everysec.stop()
    always = _redis(tmp_path / "b", port, "--appendfsync", "always")
    try:
        monkeypatch.setattr(durability, "RECHECK", 0.0)  # ask the server at every intake
        with TestClient(create_app(_settings(port, level="disk"))) as c:
            assert c.post("/api/v1/jobs", json=BODY, headers=auth("submitter")).status_code == 202
            with redis.Redis(port=port) as r:
                r.config_set("appendfsync", "everysec")  # an operator changes it under the broker
                before = r.zcard(K.jobs_all)
                refused = c.post("/api/v1/jobs", json=BODY, headers=auth("submitter"))
                assert refused.status_code == 503 and "accepts no jobs now" in refused.json()["detail"]
                assert "appendfsync always" in refused.json()["detail"]
                batch = c.post("/api/v1/jobs/batch", json={"jobs": [BODY]}, headers=auth("submitter"))
                assert batch.status_code == 503
                assert r.zcard(K.jobs_all) == before  # nothing written
    finally:
        always.stop()
