"""Per-token rate limits in Redis (shared by every replica, one EVALSHA per request) and the
body-size limit, both answered as problem documents."""

from __future__ import annotations

import redis
from litestar.testing import TestClient

from broker.app import create_app
from broker.config import validate
from tests.api.conftest import TOKENS, auth


def _settings(redis_url: str, per_minute: int, max_body: int = 1 << 20, max_file: int = 1 << 20):  # type: ignore[no-untyped-def]
    return validate({
        "redis_url": redis_url,
        "api": {"rate_limit_per_minute": per_minute, "max_body_bytes": max_body, "max_file_bytes": max_file},
        "tokens": [
            {"name": "v", "role": "viewer", "token": TOKENS["viewer"]},
            {"name": "s", "role": "submitter", "token": TOKENS["submitter"]},
            {"name": "a", "role": "admin", "token": TOKENS["admin"]},
        ],
        "sites": [{"name": "alpha", "kind": "iri", "url": "http://127.0.0.1:9/api/v1", "systems": ["p"],
                   "file_roots": {"m1": ["/home"]}, "auth": {"token_env": "SUPERFED_TEST_UNSET"}}],
    })


def test_429_with_retry_after_shared_across_replicas(clean_redis: str) -> None:
    settings = _settings(clean_redis, per_minute=5)
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        codes = [(one if i % 2 else two).get("/api/v1/sites", headers=auth("viewer")).status_code for i in range(5)]
        assert codes == [200] * 5
        r = one.get("/api/v1/sites", headers=auth("viewer"))
        assert r.status_code == 429, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(r.headers["retry-after"]) <= 60
        body = r.json()
        assert body["status"] == 429 and "Retry-After" not in body["detail"] and "5 requests a minute" in body["detail"]
        assert two.get("/api/v1/sites", headers=auth("viewer")).status_code == 429  # the other replica agrees
        assert one.get("/api/v1/sites", headers=auth("admin")).status_code == 200  # per token, not global
        # unauthenticated operations endpoints are not limited
        assert all(one.get("/healthz").status_code == 200 for _ in range(10))


def test_the_window_ends(clean_redis: str) -> None:
    settings = _settings(clean_redis, per_minute=2)
    with TestClient(create_app(settings)) as c:
        for _ in range(3):
            c.get("/api/v1/sites", headers=auth("viewer"))
        assert c.get("/api/v1/sites", headers=auth("viewer")).status_code == 429
        r_ = redis.Redis.from_url(clean_redis)
        keys = r_.keys("superfed:rate:*")
        assert len(keys) == 1 and 0 < r_.ttl(keys[0]) <= 60  # the counter expires with its window
        r_.delete(*keys)  # as if the minute were over
        assert c.get("/api/v1/sites", headers=auth("viewer")).status_code == 200


def test_zero_means_off(clean_redis: str) -> None:
    with TestClient(create_app(_settings(clean_redis, per_minute=0))) as c:
        assert all(c.get("/api/v1/sites", headers=auth("viewer")).status_code == 200 for _ in range(30))
        assert redis.Redis.from_url(clean_redis).keys("superfed:rate:*") == []


def test_one_evalsha_per_request(clean_redis: str) -> None:
    r_ = redis.Redis.from_url(clean_redis)

    def calls(cmd: str) -> int:
        return int(r_.info("commandstats").get(f"cmdstat_{cmd}", {}).get("calls", 0))

    with TestClient(create_app(_settings(clean_redis, per_minute=1000))) as c:
        c.get("/api/v1/status", headers=auth("viewer"))  # warm: the script is loaded once
        before = {cmd: calls(cmd) for cmd in ("evalsha", "eval")}
        for _ in range(20):
            assert c.get("/api/v1/status", headers=auth("viewer")).status_code == 200
        after = {cmd: calls(cmd) for cmd in before}
    assert after["evalsha"] - before["evalsha"] == 20
    assert after["eval"] == before["eval"]  # the script is cached, never sent again


def test_413_is_a_problem_document(clean_redis: str) -> None:
    with TestClient(create_app(_settings(clean_redis, per_minute=0, max_body=2048, max_file=1024))) as c:
        big = b'{"project": "m1", "spec": {"executable": "' + b"x" * 4096 + b'"}}'
        r = c.post("/api/v1/jobs", content=big, headers={**auth("submitter"), "Content-Type": "application/json"})
        assert r.status_code == 413
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["status"] == 413
        r = c.put("/api/v1/sites/alpha/files/content", params={"path": "/home/x", "project": "m1"}, content=b"y" * 1500,
                  headers=auth("submitter"))
        assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")
        r = c.post("/api/v1/sites", content=b"{" + b" " * 3000 + b"}",
                   headers={**auth("admin"), "Content-Type": "application/json"})
        assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")
