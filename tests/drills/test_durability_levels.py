"""Issue 15's durability drills: ``[durability]``'s strict levels against a redis-server killed
with SIGKILL right after a burst of 202s (single and batch intake), real processes throughout.

- ``disk`` (the server runs ``appendfsync always``): Redis restarted on the same AOF holds
  every job that was answered 202, with its RQ submission.
- ``replica`` (one replica, WAIT for it): the replica holds every job answered 202 when the
  primary dies, with its RQ submission, also after the replica itself died mid-way (the jobs
  that came after it are answered 503, not 202).

The disk drill cannot tell ``always`` from ``everysec``: a killed redis-server leaves what it
wrote in the OS's page cache, and only a machine crash (which a test cannot make) loses that;
tests/api/test_durability_levels.py checks that level ``disk`` runs only on ``always``.

Each prints ``<drill>: N accepted, 0 lost``."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from broker.demo import redis_server_args
from broker.procs import Proc
from broker.store.keys import Keys
from tests.support.servers import free_port, superfed

pytestmark = [pytest.mark.drill, pytest.mark.slow]

TOKEN = "drill-durability-submitter-0000"
SPEC = {"executable": "/bin/true", "resources": {"node_count": 1}, "attributes": {"duration": 60}}
K = Keys()


def _redis(tmp: Path, port: int, *extra: str) -> Proc:
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not on PATH"
    tmp.mkdir(parents=True, exist_ok=True)
    # no password: a replica would need it on its command line; the config allows it (loopback only)
    args = redis_server_args(exe, port, tmp, aof=True) + list(extra)
    return Proc(args, port=port, log=tmp / "redis.log").wait_ready()


def _api(tmp: Path, redis_port: int, durability: dict[str, Any]) -> tuple[Proc, str]:
    port = free_port()
    cfg = tmp / "superfed.toml"
    level = "\n".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in durability.items())
    cfg.write_text(f"""redis_url = "redis://127.0.0.1:{redis_port}/0"
allow_unauthenticated_redis = true

[durability]
{level}

[api]
rate_limit_per_minute = 0

[[tokens]]
name = "drill"
role = "submitter"
projects = ["*"]
token = "{TOKEN}"

[[sites]]
name = "alpha"
kind = "iri"
url = "http://127.0.0.1:9"
systems = ["polaris"]
auth = {{ token_env = "DRILL_NOPE" }}
""")
    cfg.chmod(0o600)
    proc = Proc(superfed("serve", "--config", str(cfg), "--port", str(port)), port=port,
                log=tmp / "api.log").wait_ready(30)
    return proc, f"http://127.0.0.1:{port}"


async def _burst(api: str, singles: int, batches: int, size: int) -> tuple[set[str], int]:
    """POSTs at once, single and batch; the ids answered 202, and how many answers were not."""
    accepted: set[str] = set()
    other = 0
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as h:

        async def one(i: int) -> None:
            nonlocal other
            async with gate:
                r = await h.post("/api/v1/jobs", json={"project": "m1", "spec": {**SPEC, "name": f"s{i}"}},
                                 headers={"Idempotency-Key": str(uuid.uuid4())})
            if r.status_code == 202:
                accepted.add(r.json()["id"])
            else:
                other += 1

        async def many(b: int) -> None:
            nonlocal other
            jobs = [{"project": "m1", "spec": {**SPEC, "name": f"b{b}-{i}"}, "idempotency_key": str(uuid.uuid4())}
                    for i in range(size)]
            async with gate:
                r = await h.post("/api/v1/jobs/batch", json={"jobs": jobs})
            assert r.status_code == 200, r.text
            for x in r.json()["results"]:
                if x["status"] == 202:
                    accepted.add(x["job"]["id"])
                else:
                    other += 1

        await asyncio.gather(*(one(i) for i in range(singles)), *(many(b) for b in range(batches)))
    return accepted, other


def _lost(r: redis.Redis, accepted: set[str]) -> list[str]:
    """Accepted jobs missing their record, their NEW index entry or their RQ submission."""
    queued = {x.decode() for x in r.lrange("rq:queue:superfed-submit", 0, -1)}
    return sorted(j for j in accepted
                  if not r.exists(K.job(j)) or r.zscore(K.jobs_by_state("NEW"), j) is None
                  or f"submit-{j}" not in queued or not r.exists(f"rq:job:submit-{j}"))


def test_disk_level_keeps_every_202_through_a_sigkill(tmp_path: Path) -> None:
    port = free_port()
    primary = _redis(tmp_path / "redis", port, "--appendfsync", "always")  # the later flag wins
    api = None
    try:
        api, url = _api(tmp_path, port, {"level": "disk"})
        accepted, other = asyncio.run(_burst(url, singles=200, batches=4, size=100))
        primary.signal(signal.SIGKILL)  # right after the last 202
        primary.proc.wait(10)
        assert len(accepted) == 600 and other == 0
        primary = _redis(tmp_path / "redis", port, "--appendfsync", "always")  # the same AOF
        with redis.Redis(port=port) as r:
            lost = _lost(r, accepted)
        print(f"durability-disk: {len(accepted)} accepted, {len(lost)} lost")
        assert not lost, f"lost after a SIGKILL at level disk: {lost[:5]}"
    finally:
        if api:
            api.stop()
        primary.stop()


def test_disk_level_refuses_to_start_on_an_everysec_server(tmp_path: Path) -> None:
    port = free_port()
    primary = _redis(tmp_path / "redis", port)  # appendfsync everysec
    try:
        with pytest.raises(RuntimeError):
            _api(tmp_path, port, {"level": "disk"})
        assert "appendfsync always" in (tmp_path / "api.log").read_text()
    finally:
        primary.stop()


def test_replica_level_keeps_every_202_on_the_replica_when_the_primary_dies(tmp_path: Path) -> None:
    """A burst, the replica killed, another burst (now answered 503: no replica confirms), the
    primary killed: the replica, restarted on its own AOF, holds every job answered 202. At the
    default level the second burst's 202s would be on no replica (and this drill fails)."""
    port, rport = free_port(), free_port()
    primary = _redis(tmp_path / "primary", port)
    replica = _redis(tmp_path / "replica", rport, "--replicaof", "127.0.0.1", str(port))
    api = None
    try:
        with redis.Redis(port=rport) as rr:
            for _ in range(200):  # the first sync: a replica that is not linked acknowledges nothing
                if rr.info("replication").get("master_link_status") == "up":
                    break
                time.sleep(0.05)
        api, url = _api(tmp_path, port, {"level": "replica", "replicas": 1, "timeout": 0.5})
        accepted, other = asyncio.run(_burst(url, singles=200, batches=2, size=100))
        assert len(accepted) == 400 and other == 0
        replica.signal(signal.SIGKILL)
        replica.proc.wait(10)
        late, refused = asyncio.run(_burst(url, singles=50, batches=1, size=50))
        primary.signal(signal.SIGKILL)  # right after the last answer
        primary.proc.wait(10)
        replica = _redis(tmp_path / "replica", rport)  # alone, on its own AOF
        accepted |= late
        with redis.Redis(port=rport) as r:
            lost = _lost(r, accepted)
        print(f"durability-replica: {len(accepted)} accepted, {refused} answered 503 (no replica), "
              f"{len(lost)} lost")
        assert refused == 100 and not late, "jobs no replica confirmed were answered 202"
        assert not lost, f"not on the replica after the primary's SIGKILL: {lost[:5]}"
    finally:
        if api:
            api.stop()
        replica.stop()
        primary.stop()
