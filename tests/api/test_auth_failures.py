"""Issue 11 (8, 9): unknown tokens were never throttled, logged or counted, and /metrics was
public. Failed authentications now count per client address (429 with Retry-After beyond
the limit, for any token from there until the minute ends), are logged without the token and
counted in /metrics; /metrics can require a token of its own."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator

import msgspec
import pytest
from litestar.testing import TestClient

from broker.app import create_app
from tests.api.conftest import TOKENS, auth, settings_for

METRICS_TOKEN = "metrics-token-0123456789abcdef"


def _client(redis_url: str, **api: object) -> TestClient:
    s = settings_for(redis_url)
    return TestClient(create_app(msgspec.structs.replace(s, api=msgspec.structs.replace(s.api, **api))))


@pytest.fixture
def auth_log() -> Iterator[list[str]]:
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("superfed.auth")
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


def test_unknown_tokens_are_throttled_per_address_logged_and_counted(clean_redis: str, auth_log: list[str]) -> None:
    with _client(clean_redis, auth_failures_per_minute=5) as c:
        guesses = [f"sf_guess_{i:04d}_secret_value" for i in range(8)]
        answers = [c.get("/api/v1/sites", headers={"Authorization": f"Bearer {g}"}) for g in guesses]
        assert [a.status_code for a in answers] == [401] * 5 + [429] * 3
        assert int(answers[5].headers["retry-after"]) > 0
        assert answers[5].headers["content-type"].startswith("application/problem+json")
        # from that address even a good token waits now (the window is per address)
        assert c.get("/api/v1/sites", headers=auth("viewer")).status_code == 429
        # logged with the address, never with the token
        assert auth_log and all("testclient" in m for m in auth_log)
        assert not any(g in m for g in guesses for m in auth_log)
        metrics = c.get("/metrics").text
        assert "superfed_auth_failures_total 6.0" in metrics, metrics[-400:]


def test_good_tokens_are_not_throttled(clean_redis: str) -> None:
    with _client(clean_redis, auth_failures_per_minute=3) as c:
        for _ in range(20):
            assert c.get("/api/v1/sites", headers=auth("viewer")).status_code == 200
        assert "superfed_auth_failures_total 0.0" in c.get("/metrics").text


def test_metrics_can_require_a_token(clean_redis: str) -> None:
    with _client(clean_redis, metrics_token_sha256=hashlib.sha256(METRICS_TOKEN.encode()).hexdigest()) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong-token-000000000"}).status_code == 401
        assert c.get("/metrics", headers=auth("admin")).status_code == 401  # an API token is not it
        ok = c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert ok.status_code == 200 and "superfed_jobs" in ok.text
    with _client(clean_redis) as c:  # not set: open, as before (deploy/nginx keeps it inside)
        assert c.get("/metrics").status_code == 200


def test_each_refusal_says_what_is_wrong(clean_redis: str, auth_log: list[str]) -> None:
    """401, 403 and 429 each name what the caller must change, and a failure is logged with its
    reason; how a header is read (scheme, blanks) is pinned."""
    with _client(clean_redis, rate_limit_per_minute=3) as c:
        def detail(headers: dict[str, str], path: str = "/api/v1/sites", method: str = "GET") -> tuple[int, str]:
            r = c.request(method, path, headers=headers)
            return r.status_code, r.json().get("detail", "")

        assert detail({}) == (401, "send Authorization: Bearer <token>")
        assert detail({"Authorization": "Basic dXNlcjpwYXNz"}) == (401, "send Authorization: Bearer <token>")
        assert detail({"Authorization": "Bearer "}) == (401, "send Authorization: Bearer <token>")
        assert detail({"Authorization": "Bearer tok-nobody-000000000000"}) == (
            401, "the token is unknown, revoked or expired")
        assert auth_log == ["failed authentication from testclient: no bearer token (1 in this minute)"]
        # the scheme is case-blind and blanks around the token do not count
        assert c.get("/api/v1/sites", headers={"Authorization": f"bearer  {TOKENS['viewer']} "}).status_code == 200
        assert detail(auth("submitter"), "/api/v1/tokens") == (
            403, "this needs the admin role; the token 's' is submitter")
        body = {"project": "m2", "spec": {"executable": "/bin/true"}}
        r = c.post("/api/v1/jobs", json=body, headers=auth("m1-submitter"))
        assert (r.status_code, r.json()["detail"]) == (403, "the token 's1' may not act for project 'm2'")
        codes = [c.get("/api/v1/sites", headers=auth("admin")) for _ in range(4)]
        limited = codes[-1]
        assert [x.status_code for x in codes] == [200, 200, 200, 429]
        assert limited.json()["title"] == "Too many requests"
        assert limited.json()["detail"].startswith("the token 'a' may make 3 requests a minute; try again in ")
        assert 0 < int(limited.headers["retry-after"]) <= 60


def test_an_unknown_token_is_logged_as_such(clean_redis: str, auth_log: list[str]) -> None:
    with _client(clean_redis) as c:
        assert c.get("/api/v1/sites", headers={"Authorization": "Bearer tok-nobody-000000000000"}).status_code == 401
    assert auth_log == ["failed authentication from testclient: unknown, revoked or expired token (1 in this minute)"]
