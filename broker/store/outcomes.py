"""The black-hole guard's record: each site's latest submissions, accepted or not.

A site that refuses jobs at once (or whose jobs fail within seconds) never builds a backlog,
so backlog-based placement would keep choosing it. The outcomes of a site's last
``demote_last`` submissions are kept (newest first, each with its time); ``demotion`` says when
the bad ones among those still inside the window dominate. Entries age out of the window, so
a demoted site recovers by itself (HTCondor's job router throttles a route the same way)."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from broker.config import PlacementConfig
from broker.store.autopipe import shared
from broker.store.keys import Keys

QUICK_FAILURE = 10.0  # seconds: a job that failed sooner after it was accepted counts as refused


async def record(
    r: aioredis.Redis, keys: Keys, site: str, *, ok: bool, last: int = 10, now: float | None = None
) -> None:
    when = time.time() if now is None else now
    key = keys.outcomes(site)
    # in the next round trip of the client's shared pipeline (a worker records one per submission)
    await shared(r).many([
        ("LPUSH", key, f"{'ok' if ok else 'bad'}:{when:.3f}"),
        ("LTRIM", key, 0, last - 1),
        ("EXPIRE", key, 86400),
    ])


def demotion(entries: list[str], *, now: float, guard: PlacementConfig) -> str | None:
    """Why a site is demoted, in words, or None. Pure."""
    ok = bad = 0
    for e in entries[: guard.demote_last]:
        kind, _, at = e.partition(":")
        try:
            when = float(at)
        except ValueError:
            continue
        if now - when > guard.demote_window:
            continue
        if kind == "bad":
            bad += 1
        else:
            ok += 1
    total = ok + bad
    if bad < guard.demote_min or bad / total < guard.demote_ratio:
        return None
    return f"{bad} of its last {total} submissions were refused or failed within seconds"


async def demotions(r: aioredis.Redis, keys: Keys, names: list[str], guard: PlacementConfig) -> dict[str, str | None]:
    """Every named site's demotion, read in one round trip."""
    if not names:
        return {}
    async with r.pipeline(transaction=False) as p:
        for n in names:
            p.lrange(keys.outcomes(n), 0, -1)
        lists = await p.execute()
    now = time.time()
    return {n: demotion([_text(x) for x in raw], now=now, guard=guard) for n, raw in zip(names, lists, strict=True)}


def _text(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x
