"""The store's fast paths (automatic pipelining, shared reads, the site-config cache) against
a real private Redis: same answers as the plain calls, errors kept per command."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from broker.config import validate_site
from broker.health import HealthRecord
from broker.store.autopipe import AutoPipeline, pack
from broker.store.coalesce import SharedCall
from broker.store.connect import async_client
from broker.store.health import HealthStore
from broker.store.keys import Keys
from broker.store.sitecache import SiteCache
from broker.store.sites import SiteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_pack_is_resp() -> None:
    assert pack(("SET", "k", b"v", 3, 1.5)) == b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$1\r\n3\r\n$3\r\n1.5\r\n"
    with pytest.raises(TypeError):
        pack(("SET", "k", True))


async def test_autopipe_batches_and_keeps_errors_apart(clean_redis: str) -> None:
    r = async_client(clean_redis)
    try:
        pipe = AutoPipeline(r)
        await r.set("s", "x")
        res = await asyncio.gather(*(pipe.execute("INCR", "n") for _ in range(200)),
                                   pipe.execute("INCR", "s"), return_exceptions=True)
        assert sorted(res[:200]) == list(range(1, 201))
        assert isinstance(res[200], ResponseError)  # "s" is not a number: only that command fails
        assert await pipe.execute("GET", "n") == "200"
    finally:
        await r.aclose()


async def test_autopipe_loads_a_script_the_server_forgot(clean_redis: str) -> None:
    r = async_client(clean_redis)
    try:
        pipe = AutoPipeline(r)
        sha = pipe.script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        assert await asyncio.gather(*(pipe.evalsha(sha, ["c"], [2]) for _ in range(3))) == [2, 4, 6]
        await r.script_flush()
        assert await pipe.evalsha(sha, ["c"], [1]) == 7
    finally:
        await r.aclose()


async def test_autopipe_reports_a_dead_server() -> None:
    r = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    pipe = AutoPipeline(r)
    with pytest.raises((RedisError, OSError)):
        await pipe.execute("PING")
    await r.aclose()


async def test_shared_call_shares_one_read_and_isolates_cancellation() -> None:
    calls = 0
    gate = asyncio.Event()

    async def read() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return calls

    shared = SharedCall(read)
    tasks = [asyncio.ensure_future(shared()) for _ in range(5)]
    await asyncio.sleep(0)
    tasks[0].cancel()  # one caller leaves; the others still get the answer
    gate.set()
    results = await asyncio.gather(*tasks[1:])
    assert results == [1, 1, 1, 1] and calls == 1
    assert await shared() == 2  # a caller after the read completed reads again


async def test_shared_call_passes_errors_to_every_waiter() -> None:
    async def boom() -> int:
        await asyncio.sleep(0)
        raise ValueError("no")

    shared = SharedCall(boom)
    res = await asyncio.gather(shared(), shared(), return_exceptions=True)
    assert all(isinstance(x, ValueError) for x in res)


def _site(name: str, weight: float = 1.0):  # type: ignore[no-untyped-def]
    return validate_site({"name": name, "kind": "iri", "url": "http://127.0.0.1:9/api", "systems": ["m"],
                          "weight": weight, "auth": {"token_env": "NOPE"}})


async def test_site_cache_follows_the_version_counter(clean_redis: str) -> None:
    r = async_client(clean_redis)
    try:
        keys = Keys("t")
        sites = SiteStore(r, keys)
        cache = SiteCache(sites)
        await sites.seed([_site("b"), _site("a")])
        assert [s.config.name for s in await cache.all()] == ["a", "b"]
        assert [s.config.name for s in await cache.all()] == [s.config.name for s in await sites.all()]
        await sites.put(_site("a", weight=3.0), 2)  # bumps sites:version
        assert (await cache.get("a")).config.weight == 3.0  # type: ignore[union-attr]
        await HealthStore(r, keys).put(HealthRecord(site="a", state="up", ok_at=1.0), [])
        stored, recs = await cache.with_health()
        assert [s.config.name for s in stored] == ["a", "b"]
        assert recs["a"] is not None and recs["a"].state == "up" and recs["b"] is None
        await sites.delete("b")
        stored, recs = await cache.with_health()
        assert [s.config.name for s in stored] == ["a"] and set(recs) == {"a"}
        # a write that bypassed SiteStore (no version bump) shows after max_age
        cache.max_age = 0.0
        await r.hdel(keys.sites, "a")
        assert await cache.all() == []
    finally:
        await r.aclose()


async def test_autopipe_transactions_are_atomic(clean_redis: str) -> None:
    r = async_client(clean_redis)
    try:
        pipe = AutoPipeline(r)
        res = await asyncio.gather(*(pipe.transaction([("INCR", "a"), ("INCR", "b")]) for _ in range(50)),
                                   pipe.execute("INCR", "a"))
        assert len({x[0] for x in res[:50]} | {res[50]}) == 51  # every INCR saw its own value
        assert await r.get("a") == "51" and await r.get("b") == "50"
        with pytest.raises(ResponseError):  # a command Redis will not queue aborts them all
            await pipe.transaction([("SET", "c", "1"), ("NOSUCHCOMMAND",)])
        assert await r.get("c") is None
        with pytest.raises(ResponseError):  # a runtime error inside EXEC is raised too
            await pipe.transaction([("SET", "d", "x"), ("INCR", "d")])
    finally:
        await r.aclose()


def test_a_long_command_packs_as_a_short_one_does() -> None:
    """autopipe packs a long command in C (hiredis): the same bytes as its own packing, and the
    same refusals (bool, None)."""
    from broker.store import autopipe

    args = ("HSET", "k", *[x for i in range(40) for x in (f"f{i}", b"\x00v\xff", i, 1.5 + i, "é")])
    assert len(args) > autopipe.LONG
    c = autopipe.pack(args)
    py = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(b), b) for b in map(autopipe._arg, args))
    assert c == py
    for bad in (True, None):
        with pytest.raises(TypeError):
            autopipe.pack((*args, bad))
