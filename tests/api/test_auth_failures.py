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
from tests.api.conftest import auth, settings_for

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
