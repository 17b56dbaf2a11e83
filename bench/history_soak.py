"""Redis memory while 100,000 jobs go through to a final state with the history on: it must stay
flat (the mover takes final jobs out as fast as they come), and the history must read back.

Run: ``nice -n 10 .venv/bin/python -m bench.history_soak [--jobs 100000] [--retention 5]``

Starts a private redis-server and the API (its config's ``[history]``: SQLite next to the config,
``retention`` seconds). Jobs are written as intake writes them (``initial_fields`` and
``index_writes``: the record and its indexes, without the RQ submission, whose RQ hash is RQ's)
and finished through the state script every state change goes through (``JobStore.advance``:
QUEUED with a site and native id, ACTIVE, then COMPLETED, or FAILED / CANCELED for some), while
the mover (``broker.tasks.archive.Mover``, what the worker holding the archive lease runs) runs
every ``--interval`` seconds in the same process. ``used_memory`` is printed every tenth of the
jobs. At the end: a GET of the first (archived) job through the API, a page of the list, and
the usage report's totals against the jobs made.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import redis

from adapters.psij import JobSpec
from bench.common import Stack, header, write_config
from bench.intake import sites
from broker.config import load
from broker.store.jobs import JobStore, index_writes, initial_fields, new_job_id
from broker.tasks import archive
from broker.tasks.runtime import Runtime

ADMIN = "bench-admin-token-0000000000000"
SPEC = msgspec.convert({"executable": "/bin/hostname", "name": "soak", "resources": {"node_count": 2},
                        "attributes": {"duration": 600}}, JobSpec)
BATCH = 250  # jobs made and finished concurrently


def final_state(i: int) -> str:
    return "FAILED" if i % 20 == 0 else "CANCELED" if i % 50 == 1 else "COMPLETED"


async def one_job(jobs: JobStore, r: Any, i: int) -> str:
    jid = new_job_id()
    fields = initial_fields(jid, f"m{i % 3}", SPEC, None, "soak", time.time())
    async with r.pipeline(transaction=True) as p:  # what intake's MULTI writes, bar the RQ job
        p.hset(jobs.keys.job(jid), mapping=fields)
        for key, score, member in index_writes(jobs.keys, fields):
            p.zadd(key, {member: score})
        await p.execute()
    site = ("nersc", "cscs", "alcf")[i % 3]
    await jobs.advance(jid, "QUEUED", fields={"site": site, "system": "s", "native_id": f"n{i}"})
    await jobs.advance(jid, "ACTIVE")
    await jobs.advance(jid, final_state(i), fields={"exit_code": 0})
    return jid


def used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def done_bytes(r: redis.Redis) -> int:
    """The sites' ``done`` sets: the last 5 minutes' finishes (placement's throughput window),
    which grow with the rate, not with the jobs kept."""
    return sum(int(r.memory_usage(f"bench:done:{s}") or 0) for s in ("nersc", "cscs", "alcf"))


async def soak(cfg: Path, n: int, interval: float, rate: float, samples: list[tuple[int, int, int, int]],
               r: redis.Redis) -> str:
    settings = load(cfg)
    rt = Runtime(settings)
    assert rt.history is not None
    mover = archive.Mover(rt, rt.history)
    stop = asyncio.Event()

    async def keep_moving() -> None:
        while not stop.is_set():
            await mover.run()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    task = asyncio.create_task(keep_moving())
    first = ""
    every = max(BATCH, n // 10)
    t0 = time.monotonic()
    try:
        made = 0
        while made < n:
            size = min(BATCH, n - made)
            ids = await asyncio.gather(*(one_job(rt.jobs, rt.redis, made + j) for j in range(size)))
            first = first or ids[0]
            made += size
            if rate:  # at most --rate jobs/s: a run longer than the 5 minutes the done sets keep
                await asyncio.sleep(max(0.0, t0 + made / rate - time.monotonic()))
            await rt.jobs.throughputs(["nersc", "cscs", "alcf"])  # what placement reads (and trims) per job
            if made % every == 0 or made == n:
                samples.append((made, used(r), int(await rt.redis.zcard(rt.keys.jobs_all)), done_bytes(r)))
                print(f"  {made:>8,} jobs made   Redis used_memory {samples[-1][1] / 2**20:7.1f} MiB   "
                      f"{samples[-1][2]:>7,} jobs in Redis, the sites' done sets {samples[-1][3] / 2**20:5.1f} MiB",
                      flush=True)
        # the tail: the last jobs age past the retention and go too
        await asyncio.sleep(settings.history.retention_s + 2 * interval)
    finally:
        stop.set()
        await task
        await rt.aclose()
    return first


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--retention", type=float, default=5.0, help="seconds a final job stays in Redis")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between the mover's runs")
    p.add_argument("--rate", type=float, default=0.0, help="jobs made per second at most (default: flat out)")
    p.add_argument("--history-url", default="",
                   help="the history database (default: SQLite next to the bench's config; or postgresql://...)")
    args = p.parse_args(argv)
    header(f"history soak: {args.jobs:,} jobs to a final state, retention {args.retention:g} s, "
           f"mover every {args.interval:g} s, {'SQLite' if not args.history_url else args.history_url.split(':')[0]}")
    with Stack("history-soak", deadline=3600) as st:
        redis_url = st.redis()
        cfg = write_config(st.dir / "bench.toml", redis_url=redis_url, sites=sites(), tokens={"admin": ADMIN},
                           api={"rate_limit_per_minute": 0})
        with cfg.open("a") as f:
            f.write(f'\n[history]\nretention = {args.retention!r}\ninterval = {args.interval!r}\n'
                    f'url = "{args.history_url}"\n')
        api = st.api(cfg)
        r = redis.Redis.from_url(redis_url)
        base = used(r)
        print(f"  {0:>8,} jobs made   Redis used_memory {base / 2**20:7.1f} MiB (empty broker)")
        samples: list[tuple[int, int, int, int]] = []
        t0 = time.monotonic()
        first = asyncio.run(soak(cfg, args.jobs, args.interval, args.rate, samples, r))
        took = time.monotonic() - t0
        end = used(r)
        left = int(r.zcard("bench:jobs:all"))
        db = Path(load(cfg).history.url[len("sqlite://"):])
        size = f"{db.stat().st_size / 2**20:,.1f} MiB" if not args.history_url and db.exists() else "(not SQLite)"
        h = {"Authorization": f"Bearer {ADMIN}"}
        got = httpx.get(f"{api}/api/v1/jobs/{first}", headers=h, timeout=30)
        page = httpx.get(f"{api}/api/v1/jobs", params={"limit": 100}, headers=h, timeout=30).json()
        rep = httpx.get(f"{api}/api/v1/usage", headers=h, timeout=120).json()
        r.close()
    want = {s: sum(1 for i in range(args.jobs) if final_state(i) == s) for s in ("COMPLETED", "FAILED", "CANCELED")}
    t = rep["totals"]
    steady = [m for made, m, _, _ in samples if made >= args.jobs // 5]
    print(f"\n{'after':<28} {'Redis used_memory':>18} {'jobs in Redis':>14} {'done sets':>10}")
    for made, m, resident, done in samples:
        print(f"{made:>10,} jobs made{'':<8} {m / 2**20:>14.1f} MiB {resident:>14,} {done / 2**20:>6.1f} MiB")
    print(f"{'the end (all moved)':<28} {end / 2**20:>14.1f} MiB {left:>14,}")
    print(f"\nmade {args.jobs:,} jobs in {took:.0f} s ({args.jobs / took:,.0f}/s); history file {size}")
    print(f"steady state (from {args.jobs // 5:,} jobs): used_memory {min(steady) / 2**20:.1f}-"
          f"{max(steady) / 2**20:.1f} MiB; empty {base / 2**20:.1f} MiB, end {end / 2**20:.1f} MiB")
    print(f"GET /api/v1/jobs/{first} (archived): {got.status_code} {got.json().get('state')}; "
          f"list: {len(page['items'])} jobs, next_cursor {'set' if page['next_cursor'] else 'none'}")
    print(f"usage totals: {t['jobs']:,} jobs ({t['completed']:,} completed, {t['failed']:,} failed, "
          f"{t['canceled']:,} canceled), {t['node_hours']:.3f} node-hours; made {want}")
    ok = (got.status_code == 200 and got.json()["id"] == first and t["jobs"] == args.jobs
          and all(t[s.lower()] == n for s, n in want.items()) and left == 0)
    print("history soak: " + ("history reads back whole" if ok else "MISMATCH (see above)"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
