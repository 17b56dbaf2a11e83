"""Two API processes on one private Redis: a drain through one is obeyed by placement previews
through the other within a second (no restart, no cache to expire)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.api.conftest import TOKENS
from tests.support.servers import Proc, free_port, running, superfed

SPEC = {"executable": "/bin/true", "resources": {"node_count": 1}, "attributes": {"duration": 600}}


def _config(tmp: Path, redis_url: str) -> Path:
    cfg = tmp / "superfed.toml"
    sites = "".join(f"""
[[sites]]
name = "{name}"
kind = "iri"
url = "http://127.0.0.1:9/api/v1"
systems = ["polaris"]
auth = {{ token_env = "SUPERFED_TEST_UNSET" }}
""" for name in ("alpha", "beta"))
    cfg.write_text(f"""
redis_url = "{redis_url}"

[[tokens]]
name = "admin"
role = "admin"
token = "{TOKENS['admin']}"
{sites}""")
    return cfg


def _drained(url: str, headers: dict[str, str]) -> bool:
    r = httpx.post(f"{url}/api/v1/placement", json={"project": "m1", "spec": SPEC}, headers=headers, timeout=5)
    assert r.status_code == 200, r.text
    alpha = next(x for x in r.json()["ranking"] if x["site"] == "alpha")
    return not alpha["eligible"] and any("draining" in why for why in alpha["reasons"])


@pytest.mark.slow
def test_a_drain_through_one_replica_is_obeyed_by_the_other(clean_redis: str, tmp_path: Path) -> None:
    cfg = _config(tmp_path, clean_redis)
    ports = [free_port(), free_port()]
    procs = [Proc(superfed("serve", "--config", str(cfg), "--port", str(p)), port=p, log=tmp_path / f"api{i}.log")
             for i, p in enumerate(ports)]
    with running(*procs):
        for p in procs:
            p.wait_ready()
        one, two = (f"http://127.0.0.1:{p}" for p in ports)
        headers = {"Authorization": f"Bearer {TOKENS['admin']}"}
        assert not _drained(two, headers)
        r = httpx.post(f"{one}/api/v1/sites/alpha/drain", headers=headers, timeout=5)
        assert r.status_code == 200 and r.json()["draining"] is True
        # "at once": the other replica's very next request after the 200 sees it (every
        # write bumps sites:version, which each replica reads per request), no waiting
        assert _drained(two, headers), "the other replica still places at a drained site"
        # and back: enable through the second, obeyed by the first
        assert httpx.post(f"{two}/api/v1/sites/alpha/enable", headers=headers, timeout=5).status_code == 200
        assert not _drained(one, headers)
        audit = httpx.get(f"{two}/api/v1/audit", headers=headers, timeout=5).json()["items"]
        assert [e["action"] for e in audit[:2]] == ["site.enable", "site.drain"]
