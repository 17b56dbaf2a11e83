"""How dispatch and intake scale with processes: dispatch with 1, 2 and 4 workers, intake with
1 and 2 API processes, each as a ratio to the one-process row of the same command.

Run: ``.venv/bin/python -m bench.scaling [--jobs 1000] [--duration 8]``

- dispatch: ``superfed demo`` with N workers (time scale 0.01), ``--jobs`` submitted at once,
  jobs/s from the first 202 to the last job held by a facility (bench/dispatch.py's measure).
- intake: a private redis-server and N ``superfed serve`` processes (unpinned, three sites, no
  workers), driven together by the load generator with the connections split between them;
  accepted/s is the sum, and every 202 is checked to be a job in Redis.

On a machine with two cores the curve flattens early, and the table says where: the load
generator, Redis, the API processes and the workers all share those two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time

import redis

from bench.common import Load, Stack, header, load, write_config
from bench.dispatch import held_at, start_demo, submit_many, wait_held
from bench.intake import BODY, HEADERS, TOKEN, sites


def dispatch_rate(workers: int, jobs: int) -> tuple[float, int]:
    """(jobs/s from the first 202 to the last job held, jobs held) with ``workers`` workers."""
    with Stack(f"scaling-dispatch-{workers}", deadline=300) as st:
        info = start_demo(st, workers)
        r = redis.Redis.from_url(info["redis"])
        ids = asyncio.run(submit_many(info["api"], info["tokens"]["submitter"], jobs))
        hashes = wait_held(r, ids, 180)
        r.close()
    created = [float(h[b"created"]) for h in hashes.values()]
    held = [t for t in (held_at(h) for h in hashes.values()) if t is not None]
    span = max(held) - min(created) if held else float("inf")
    return len(held) / span, len(held)


def intake_rate(apis: int, connections: int, duration: float) -> tuple[float, int]:
    """(accepted jobs/s summed over ``apis`` API processes, jobs found in Redis afterwards)."""
    with Stack(f"scaling-intake-{apis}", deadline=120 + 3 * duration) as st:
        redis_url = st.redis()
        cfg = write_config(st.dir / "bench.toml", redis_url=redis_url, sites=sites(), tokens={"submitter": TOKEN},
                           api={"rate_limit_per_minute": 0})
        urls = [st.api(cfg, cpu=None, name=f"api-{i}") for i in range(apis)]
        results: list[Load] = []

        def drive(url: str) -> None:
            results.append(load(f"intake via {url}", f"{url}/api/v1/jobs", method="POST", headers=HEADERS,
                                body=BODY, connections=max(1, connections // apis), duration=duration, warmup=1))

        threads = [threading.Thread(target=drive, args=(u,)) for u in urls]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        r = redis.Redis.from_url(redis_url)
        kept = int(r.zcard("bench:jobs:all"))
        r.close()
    return sum(x.rps for x in results), kept


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--duration", type=float, default=8)
    args = p.parse_args(argv)
    header(f"scaling on {os.cpu_count()} CPUs: dispatch of {args.jobs:,} jobs with 1, 2, 4 workers; "
           f"intake with 1 and 2 API processes ({args.connections} connections, {args.duration:.0f} s)")
    print("   (here the API processes are unpinned, as the workers are)")
    print(f"{'what':<34} {'rate/s':>9} {'x one':>7} {'count':>8}")
    base = 0.0
    for n in (1, 2, 4):
        t0 = time.monotonic()
        rate, held = dispatch_rate(n, args.jobs)
        base = base or rate
        print(f"{f'dispatch, {n} worker(s)':<34} {rate:>9.0f} {rate / base:>7.2f} {held:>8}"
              f"   ({time.monotonic() - t0:.0f} s)", flush=True)
    base = 0.0
    for n in (1, 2):
        rate, kept = intake_rate(n, args.connections, args.duration)
        base = base or rate
        print(f"{f'intake, {n} API process(es)':<34} {rate:>9.0f} {rate / base:>7.2f} {kept:>8}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
