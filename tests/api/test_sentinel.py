"""``redis+sentinel://`` against real sentinels (``redis-server --sentinel``) on loopback: the
broker's clients (sync, async, the auto-pipeline, RQ's enqueue) follow a failover with no
error reaching the caller, and the start-up probe refuses sentinels anyone may talk to. The
SIGKILL of a primary under load is the sentinel-failover drill (tests/drills/test_sentinel.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError

from broker import queues
from broker.store import primary
from broker.store.autopipe import shared
from broker.store.connect import async_client, primary_address, sync_client
from broker.store.keys import Keys
from broker.store.redis_auth import UnauthenticatedRedis, check, open_to_anyone
from tests.support.sentinel import SERVICE, SentinelSet


@pytest.fixture
def one_sentinel(tmp_path: Path) -> Iterator[SentinelSet]:
    s = SentinelSet(tmp_path, replicas=1, sentinels=1)
    try:
        yield s
    finally:
        s.stop()


@pytest.mark.slow
def test_every_client_follows_a_failover(one_sentinel: SentinelSet) -> None:
    """SENTINEL FAILOVER mid-traffic: the old primary turns replica, so connections to it get
    READONLY (redis-py's sentinel connection makes that a ConnectionError, the clients' retry
    policy reconnects through the sentinel). Every operation succeeds, and lands on the new one."""
    s = one_sentinel
    old = s.primary()
    sync = sync_client(s.url)  # bytes, as RQ wants
    text = sync_client(s.url, decode=True)
    done: dict[str, list[int]] = {"async": [], "pipe": [], "sync": [], "rq": []}  # each op's number

    keys = Keys()
    since: list[float] = []

    async def traffic() -> float:
        r = async_client(s.url)
        pipe = shared(r)
        since.append(await primary.since(r, keys))
        since.append(time.time())
        s.sentinel().execute_command("SENTINEL", "FAILOVER", SERVICE)
        deadline = time.monotonic() + 30
        moved_at = None
        i = 0
        while time.monotonic() < deadline and (moved_at is None or time.monotonic() < moved_at + 3.0):
            await r.set(f"superfed:t:async:{i}", 1)
            done["async"].append(i)
            await pipe.execute("SET", f"superfed:t:pipe:{i}", 1)
            done["pipe"].append(i)
            await asyncio.to_thread(text.set, f"superfed:t:sync:{i}", 1)
            done["sync"].append(i)
            await asyncio.to_thread(queues.enqueue_submit, sync, f"j{i}", retries=1, timeout=10)
            done["rq"].append(i)
            i += 1
            if moved_at is None and primary_address(s.url) != ("127.0.0.1", old):
                moved_at = time.monotonic()
            await asyncio.sleep(0.02)
        since.append(await primary.since(r, keys, max_age=0))
        since.append(await primary.since(async_client(s.url), keys, max_age=0))  # another process's view
        await r.aclose()
        assert moved_at is not None, "the sentinel did not fail over within 30 s"
        return moved_at

    asyncio.run(traffic())  # (no operation raised)
    new = s.primary()
    assert new != old
    fresh = s.node(new)  # straight at the new primary
    assert fresh.info("replication")["role"] == "master"
    # Writes sent to the old primary between the promotion and the clients' next look at the
    # sentinels are Sentinel's known loss window (README); the clients look at least once a
    # second, so the last second of traffic (each kind's last 10 operations) is all there
    landed = {kind: [i for i in ops if fresh.exists(f"superfed:t:{kind}:{i}")] for kind, ops in done.items()
              if kind != "rq"}
    queued = {int(x.removeprefix("submit-j")) for x in fresh.lrange(f"rq:queue:{queues.SUBMIT}", 0, -1)}
    landed["rq"] = sorted(queued)
    for kind, ops in done.items():
        assert set(ops[-10:]) <= set(landed[kind]), (kind, ops[-10:], landed[kind][-10:])
    print({kind: f"{len(landed[kind])}/{len(ops)} on the new primary" for kind, ops in done.items()})
    # the broker's "since when has this primary held the data" moved to the promotion (the
    # workers' takeover waits after it; lost writes are looked for at the facilities), the same
    # for every process
    before, failover_at, after, elsewhere = since
    assert before < failover_at <= after and after == elsewhere
    sync.close()
    text.close()


def test_the_probe_refuses_sentinels_anyone_may_talk_to(tmp_path: Path) -> None:
    """An open sentinel lets anyone point the broker at a Redis of theirs (SENTINEL MONITOR /
    SET / FAILOVER): refused like an open Redis, with the way out in the message."""
    (tmp_path / "open").mkdir()
    (tmp_path / "closed").mkdir()
    opened = SentinelSet(tmp_path / "open", replicas=1, sentinels=1, sentinel_auth=False, aof=False)
    try:
        assert open_to_anyone(opened.url) is True
        with pytest.raises(UnauthenticatedRedis, match="sentinel_password"):
            check(opened.url, False, "test")
    finally:
        opened.stop()
    closed = SentinelSet(tmp_path / "closed", replicas=1, sentinels=1, aof=False)
    try:
        assert open_to_anyone(closed.url) is False  # the sentinel and the primary both ask for a password
        check(closed.url, False, "test")
        wrong = closed.url.replace(f"sentinel_password={closed.sentinel_password}", "sentinel_password=wrong")
        assert primary_address(wrong) is None  # refused by the sentinel: no primary to give out
        # nothing answers at all: cannot tell (the broker waits for it)
        assert open_to_anyone("redis+sentinel://127.0.0.1:9/x", wait=0.3) is None
    finally:
        closed.stop()


def test_a_demoted_primary_behind_a_plain_url(tmp_path: Path) -> None:
    """A plain redis:// URL whose server is (or became) a replica: writes answer READONLY. The
    auto-pipeline sends such a batch once more on a fresh connection, then fails it as a
    ConnectionError (the API's 503), never as a reply a caller would take for the command's own
    error; reads still work; once the server is primary again the same clients write."""
    s = SentinelSet(tmp_path, replicas=1, sentinels=0, aof=False)
    try:
        replica = next(p for p in s.nodes if p != s.first_primary)
        url = f"redis://superfed:{s.password}@127.0.0.1:{replica}/0"
        text = sync_client(url, decode=True)

        async def before() -> None:
            r = async_client(url)
            pipe = shared(r)
            assert await pipe.execute("GET", "superfed:t:x") is None
            with pytest.raises(RedisConnectionError, match="READONLY"):
                await pipe.execute("SET", "superfed:t:x", "1")
            with pytest.raises(ReadOnlyError):  # the plain client: retried on a fresh connection, then said
                await r.set("superfed:t:x", "1")
            await r.aclose()

        asyncio.run(before())
        with pytest.raises(ReadOnlyError):
            text.set("superfed:t:x", "1")
        s.node(replica).execute_command("REPLICAOF", "NO", "ONE")

        async def after() -> None:
            r = async_client(url)
            assert await shared(r).execute("SET", "superfed:t:x", "2") in (b"OK", "OK", True)
            await r.aclose()

        asyncio.run(after())
        assert text.set("superfed:t:y", "1") and text.get("superfed:t:x") == "2"
        text.close()
    finally:
        s.stop()
