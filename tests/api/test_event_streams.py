"""Issue 11 (5): Server-Sent Events. 64 streams from one viewer token used to take 64 of the
API's pooled Redis connections, and every other request answered 503 while they stayed
open. Now one subscription per API process feeds every stream; a token may hold only
``max_streams_per_token`` streams (429 with Retry-After beyond); a stream ends when its token
is revoked or expires. Real uvicorn and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import pytest
import redis

from broker.app import create_app
from tests.api.conftest import auth, settings_for
from tests.support.servers import ThreadedServer


def _serve(redis_url: str, max_streams: int) -> ThreadedServer:
    s = settings_for(redis_url)
    s = msgspec.structs.replace(s, api=msgspec.structs.replace(s.api, max_streams_per_token=max_streams))
    return ThreadedServer(create_app(s))


@pytest.fixture
def wide(clean_redis: str) -> Iterator[ThreadedServer]:
    with _serve(clean_redis, 100) as srv:
        yield srv


@pytest.fixture
def narrow(clean_redis: str) -> Iterator[ThreadedServer]:
    with _serve(clean_redis, 2) as srv:
        yield srv


@contextlib.asynccontextmanager
async def _open(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> AsyncIterator[tuple[httpx.Response, AsyncIterator[str]]]:
    async with client.stream("GET", "/api/v1/status/events", headers=headers) as r:
        lines = r.aiter_lines()
        yield r, lines


async def _first_line(lines: AsyncIterator[str]) -> str:
    return await asyncio.wait_for(lines.__anext__(), timeout=20)


async def _until(lines: AsyncIterator[str], text: str, bound: float = 30) -> list[str]:
    """Lines up to (and with) the first that contains ``text``, read with a generous bound."""
    seen: list[str] = []
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        line = await asyncio.wait_for(lines.__anext__(), timeout=max(0.1, deadline - time.monotonic()))
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} in {seen}")


def test_64_streams_from_one_token_leave_other_requests_alone(wide: ThreadedServer, clean_redis: str) -> None:
    async def go() -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=wide.url, timeout=30, limits=limits) as client, \
                contextlib.AsyncExitStack() as stack:
            streams = [await stack.enter_async_context(_open(client, auth("viewer"))) for _ in range(64)]
            assert all(r.status_code == 200 for r, _ in streams)
            assert {await _first_line(lines) for _, lines in streams} == {": subscribed"}
            # while all 64 are open, everything else answers (the pool has 64 connections)
            others = await asyncio.gather(*[client.get(path, headers=auth(who)) for path, who in [
                ("/api/v1/sites", "submitter"), ("/api/v1/status", "viewer"), ("/api/v1/jobs", "viewer"),
                ("/api/v1/tokens", "admin")] * 10])
            assert [o.status_code for o in others] == [200] * 40, {o.status_code for o in others}
            assert (await client.get("/readyz")).status_code == 200
            # and one publication reaches every stream
            redis.Redis.from_url(clean_redis).publish("superfed:events", '{"site": "alpha", "state": "down"}')
            for _, lines in streams:
                got = await _until(lines, "\"state\"")
                assert got[-2:] == ["event: health", 'data: {"site": "alpha", "state": "down"}'], got

    asyncio.run(go())


def test_a_token_may_hold_only_so_many_streams(narrow: ThreadedServer) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(base_url=narrow.url, timeout=30) as client:
            async with _open(client, auth("viewer")) as (a, la), _open(client, auth("viewer")) as (b, lb):
                assert a.status_code == b.status_code == 200
                await _first_line(la)
                await _first_line(lb)
                over = await client.get("/api/v1/status/events", headers=auth("viewer"))
                assert over.status_code == 429 and int(over.headers["retry-after"]) > 0
                assert over.headers["content-type"].startswith("application/problem+json")
                assert "2 event streams" in over.json()["detail"]
                async with _open(client, auth("submitter")) as (c, _):  # another token: its own count
                    assert c.status_code == 200
            # both closed: the token may open streams again (the server notices the hang-up)
            deadline = time.monotonic() + 20
            while True:
                async with _open(client, auth("viewer")) as (again, lines):
                    if again.status_code == 200:
                        assert await _first_line(lines) == ": subscribed"
                        break
                assert time.monotonic() < deadline, "the closed streams were never released"
                await asyncio.sleep(0.2)

    asyncio.run(go())


def test_a_stream_ends_when_its_token_is_revoked(wide: ThreadedServer) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(base_url=wide.url, timeout=30) as client:
            made = (await client.post("/api/v1/tokens", json={"name": "watcher", "role": "viewer"},
                                      headers=auth("admin"))).json()
            async with _open(client, {"Authorization": f"Bearer {made['token']}"}) as (r, lines):
                assert r.status_code == 200 and await _first_line(lines) == ": subscribed"
                assert (await client.delete(f"/api/v1/tokens/{made['id']}", headers=auth("admin"))).status_code == 204
                got = await _until(lines, "revoked")
                assert "event: end" in got
                rest = [line async for line in lines]  # and the server closes it
                assert all("health" not in x for x in rest)

    asyncio.run(go())


def test_a_stream_ends_when_its_token_expires(wide: ThreadedServer) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(base_url=wide.url, timeout=30) as client:
            soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
            made = (await client.post("/api/v1/tokens", json={"name": "brief", "role": "viewer", "expires_at": soon},
                                      headers=auth("admin"))).json()
            async with _open(client, {"Authorization": f"Bearer {made['token']}"}) as (r, lines):
                assert r.status_code == 200
                got = await _until(lines, "expired")
                assert "event: end" in got
                assert [line async for line in lines] in ([], [""])

    asyncio.run(go())


def test_comments_carry_no_data_line(wide: ThreadedServer) -> None:
    """Issue 13: ': subscribed' and the keep-alives came with an empty 'data:' line, which a
    browser's EventSource delivers as an empty message. A comment block is the comment alone."""
    async def go() -> None:
        async with httpx.AsyncClient(base_url=wide.url, timeout=30) as client, \
                _open(client, auth("viewer")) as (r, lines):
            assert r.status_code == 200
            assert [await _first_line(lines), await _first_line(lines)] == [": subscribed", ""]

    asyncio.run(go())
