"""A health event goes to the SSE stream with ``at`` in ISO 8601 UTC, as every other time in
the API (it used to be epoch seconds). A real Redis: the event as published on the channel."""

from __future__ import annotations

import json

import pytest
import redis

from broker.health import HealthEvent, HealthRecord
from broker.store.connect import async_client
from broker.store.health import HealthStore
from broker.store.keys import Keys

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_published_health_event_says_when_in_iso_8601(clean_redis: str) -> None:
    keys = Keys("t")
    sub = redis.Redis.from_url(clean_redis).pubsub(ignore_subscribe_messages=True)
    sub.subscribe(keys.events)
    r = async_client(clean_redis)
    try:
        ev = HealthEvent(site="a", component=None, state="down", previous="up", at=1796031756.6015, detail="no answer")
        await HealthStore(r, keys).put(HealthRecord(site="a", state="down", ok_at=1.0), [ev])
        msg = None
        for _ in range(50):  # up to 5 s
            msg = sub.get_message(timeout=0.1)
            if msg:
                break
        assert msg is not None
        assert json.loads(msg["data"]) == {"site": "a", "component": None, "state": "down", "previous": "up",
                                           "at": "2026-11-30T09:42:36.601Z", "detail": "no answer"}  # fmt: skip
    finally:
        sub.close()
        await r.aclose()
