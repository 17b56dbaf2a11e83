"""Dispatch without HTTP intake in the way: jobs are accepted with the broker's own intake
function straight into Redis (what a 202 writes), while ``superfed demo``'s two workers run;
jobs/s is the number held by a facility over the time from the first accepted to the last held
(after 40 jobs that warm the workers up, as bench.dispatch's idle jobs do).

Run: ``.venv/bin/python -m bench.drain [--jobs 1000]``. On a machine where the API's intake is
the slower part, ``bench.dispatch`` measures intake; this measures the workers."""

from __future__ import annotations

import argparse
import time

import msgspec
import redis

from bench.common import Stack, header, workers_cpu
from bench.dispatch import SPEC, held_at, start_demo, wait_held
from broker.config import load
from broker.intake import create_job_sync
from broker.schemas import JobCreate
from broker.store.keys import Keys

WARM = 40  # jobs dispatched before the measured ones (each worker gets some for every site)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1000)
    args = p.parse_args(argv)
    header(f"drain: {args.jobs:,} jobs accepted straight into Redis -> held by a simulated facility, 2 workers")
    with Stack("drain", deadline=300) as st:
        info = start_demo(st, 2)
        config = str(st.dir / "demo" / "superfed.toml")
        settings = load(config)
        r = redis.Redis.from_url(info["redis"])
        body = msgspec.convert({"project": "m0001", "spec": SPEC}, JobCreate)
        keys = Keys(settings.namespace)
        # warm: each worker's first submissions fetch its facility tokens (signing the SF API
        # client assertion parses the RSA key: ~0.1 s of CPU a worker), once per start
        wait_held(r, [create_job_sync(r, keys, settings, body, "bench").id for _ in range(WARM)], 60)
        spy = st.profile("demo", 8)  # BENCH_PROFILE=DIR: every process of the demo during the drain
        cpu0 = workers_cpu(config)
        t0 = time.time()
        ids = [create_job_sync(r, keys, settings, body, "bench").id for _ in range(args.jobs)]
        accepted_s = time.time() - t0
        hashes = wait_held(r, ids, 200)
        cpu_ms = (workers_cpu(config) - cpu0) * 1000 / args.jobs
        if spy:
            spy.wait(30)
        r.close()
    held = sorted(t for t in (held_at(h) for h in hashes.values()) if t is not None)
    span = held[-1] - t0 if held else float("inf")
    rate = len(held) / span
    print(f"{len(held):,} of {args.jobs:,} held; accepting them took {accepted_s:.2f} s; first accepted -> last held "
          f"{span:.2f} s; the two workers used {cpu_ms:.2f} ms of CPU per job")
    print(f"drain: {rate:,.0f} jobs/s with 2 workers (target >= 300): {'met' if rate >= 300 else 'NOT met'}")
    return 0 if rate >= 300 and len(held) == args.jobs else 1


if __name__ == "__main__":
    raise SystemExit(main())
