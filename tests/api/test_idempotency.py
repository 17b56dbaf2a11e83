"""Idempotency-Key on POST /api/v1/jobs, through the API over a real private Redis: replay,
another body, a request still in flight, expiry, and the key's scope (one token's key never
answers another token)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import msgspec
import pytest
import redis
from litestar.testing import TestClient

from broker.app import create_app
from broker.intake import IdemState
from broker.store.keys import Keys
from tests.api.conftest import auth, settings_for

SPEC = {"executable": "/bin/true", "resources": {"node_count": 1}, "attributes": {"duration": 60}}
BODY = {"project": "m1", "spec": SPEC}
TTL = 90  # seconds: a configured TTL, so the test can tell it from the default (a day)


@pytest.fixture
def idem_client(clean_redis: str) -> Iterator[tuple[TestClient, redis.Redis]]:
    settings = msgspec.structs.replace(
        settings_for(clean_redis),
        api=msgspec.structs.replace(settings_for(clean_redis).api, idempotency_ttl=TTL),
    )
    r = redis.Redis.from_url(clean_redis, decode_responses=True)
    with TestClient(create_app(settings)) as c:
        yield c, r
    r.close()


def post(c: TestClient, role: str, key: str, body: dict = BODY):  # type: ignore[no-untyped-def]
    return c.post("/api/v1/jobs", json=body, headers={**auth(role), "Idempotency-Key": key})


def idem_keys(r: redis.Redis) -> list[str]:
    return sorted(r.scan_iter(match=Keys().idempotency("*", "*")))


def job_count(r: redis.Redis) -> int:
    return int(r.zcard(Keys().jobs_all))


def test_replay_returns_the_same_job_marked_replayed(idem_client: tuple[TestClient, redis.Redis]) -> None:
    c, r = idem_client
    first = post(c, "submitter", "k-replay")
    again = post(c, "submitter", "k-replay")
    assert first.status_code == again.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"] == f"/api/v1/jobs/{first.json()['id']}"
    assert job_count(r) == 1
    assert r.llen("rq:queue:superfed-submit") == 1  # one submission, not two


def test_another_body_with_the_same_key_is_422_and_creates_nothing(
    idem_client: tuple[TestClient, redis.Redis],
) -> None:
    c, r = idem_client
    assert post(c, "submitter", "k-body").status_code == 202
    other = post(c, "submitter", "k-body", {**BODY, "spec": {**SPEC, "executable": "/bin/false"}})
    assert other.status_code == 422, other.text
    assert "different body" in other.json()["detail"]
    assert job_count(r) == 1


def test_a_request_still_in_flight_is_409_with_retry_after(idem_client: tuple[TestClient, redis.Redis]) -> None:
    c, r = idem_client
    # the answer a request still being handled leaves (older API versions wrote it first)
    first = post(c, "submitter", "k-probe")
    key = idem_keys(r)[0]
    fp = msgspec.json.decode(r.get(key), type=IdemState).fp
    pending = Keys().idempotency(key.split(":")[2], "k-flight")
    r.set(pending, msgspec.json.encode(IdemState(fp=fp, state="pending")), ex=TTL)
    res = post(c, "submitter", "k-flight")
    assert res.status_code == 409, res.text
    assert res.headers["Retry-After"] == "1"
    assert "still being handled" in res.json()["detail"]
    assert job_count(r) == 1 and first.status_code == 202
    # a different body is still a 422, in flight or not
    assert post(c, "submitter", "k-flight", {**BODY, "project": "m2"}).status_code == 422


def test_concurrent_requests_with_one_key_make_one_job(idem_client: tuple[TestClient, redis.Redis]) -> None:
    c, r = idem_client
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(c, "submitter", "k-race"), range(16)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 15
    assert job_count(r) == 1


def test_the_key_expires_after_the_configured_ttl(idem_client: tuple[TestClient, redis.Redis]) -> None:
    c, r = idem_client
    first = post(c, "submitter", "k-ttl").json()["id"]
    (key,) = idem_keys(r)
    assert TTL - 10 < r.ttl(key) <= TTL  # the configured TTL, not the default day
    r.pexpire(key, 1)  # time passes: the key expires as Redis would expire it
    deadline = time.monotonic() + 10
    while r.exists(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    again = post(c, "submitter", "k-ttl")
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers
    assert again.json()["id"] != first
    assert job_count(r) == 2


def test_the_key_is_scoped_per_token(idem_client: tuple[TestClient, redis.Redis]) -> None:
    c, r = idem_client
    a = post(c, "submitter", "k-shared")
    b = post(c, "m1-submitter", "k-shared")
    assert a.status_code == b.status_code == 202
    assert "Idempotent-Replayed" not in b.headers
    assert b.json()["id"] != a.json()["id"]
    assert len(idem_keys(r)) == 2 and job_count(r) == 2
    # and each token replays its own job
    assert post(c, "m1-submitter", "k-shared").json()["id"] == b.json()["id"]
    assert post(c, "submitter", "k-shared").json()["id"] == a.json()["id"]


def test_a_connection_closed_under_the_watch_is_a_503(idem_client: tuple[TestClient, redis.Redis],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A failover kills the primary while a keyed request WATCHes: redis-py resets the
    connection with an UNWATCH that uvloop refuses with a RuntimeError (seen in the Sentinel
    drill). That is Redis being away, a 503 the client retries, not a 500; nothing is written."""
    from redis.asyncio.client import Pipeline

    c, r = idem_client

    async def closed(self: Pipeline, *args: object, **kw: object) -> object:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True reading=False 0x1>; "
                           "the handler is closed")

    monkeypatch.setattr(Pipeline, "immediate_execute_command", closed)
    resp = post(c, "submitter", "k-failover")
    assert resp.status_code == 503, resp.text
    assert "Redis" in resp.json()["detail"] and job_count(r) == 0
    monkeypatch.undo()
    assert post(c, "submitter", "k-failover").status_code == 202  # asked again once Redis is back


def test_another_runtime_error_is_not_taken_for_redis_being_away() -> None:
    from broker.intake import closed_transport

    assert closed_transport(RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is "
                                         "closed"))
    assert not closed_transport(RuntimeError("dictionary changed size during iteration"))
