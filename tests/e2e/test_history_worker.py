"""A real ``superfed worker`` process moves final jobs past their retention to the history (the
archive lease, its interval) and ``superfed serve`` reads them back: the wiring the task tests
do not reach (the config file's [history], the default database next to it, the lease)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import redis

from broker.config import load
from tests.api.conftest import TOKENS
from tests.support.history import Made, make_final
from tests.support.servers import Proc, free_port, superfed, wait_until

pytestmark = pytest.mark.slow


def test_a_worker_moves_old_final_jobs_and_the_api_still_serves_them(clean_redis: str, tmp_path: Path) -> None:
    cfg = tmp_path / "superfed.toml"
    cfg.write_text(f'''
redis_url = "{clean_redis}"

[[tokens]]
name = "root"
role = "admin"
token = "{TOKENS["admin"]}"

[history]
retention = "1h"
interval = "1s"
''')
    settings = load(cfg)
    ids = make_final(clean_redis, settings, [Made("COMPLETED", ended=time.time() - 7200, nodes=3)])
    kept = make_final(clean_redis, settings, [Made("FAILED", ended=time.time() - 10)])  # not due yet
    r = redis.Redis.from_url(clean_redis)
    port = free_port()
    worker = Proc(superfed("worker", "--config", str(cfg), "--name", "w1"), log=tmp_path / "worker.log")
    api = Proc(superfed("serve", "--config", str(cfg), "--port", str(port)), port=port, log=tmp_path / "api.log")
    try:
        wait_until(lambda: not r.exists(f"superfed:job:{ids[0]}"), timeout=60, what="the worker moving the job")
        assert (tmp_path / "history.db").exists()  # the default: next to the config file
        assert r.exists(f"superfed:job:{kept[0]}")
        api.wait_ready()
        h = {"Authorization": f"Bearer {TOKENS['admin']}"}
        got = httpx.get(f"http://127.0.0.1:{port}/api/v1/jobs/{ids[0]}", headers=h, timeout=10)
        assert got.status_code == 200 and got.json()["state"] == "COMPLETED"
        page = httpx.get(f"http://127.0.0.1:{port}/api/v1/jobs", headers=h, timeout=10).json()
        assert [j["id"] for j in page["items"]] == [kept[0], ids[0]]
        usage = httpx.get(f"http://127.0.0.1:{port}/api/v1/usage", headers=h, timeout=10).json()
        assert usage["totals"]["jobs"] == 2 and usage["totals"]["node_hours"] == 4.0  # 3 nodes x 1 h + 1 x 1 h
    finally:
        api.stop()
        worker.stop()
