"""Jobs accepted per second by ``POST /api/v1/jobs`` (one job a request) against
``POST /api/v1/jobs/batch`` (1,000 a request), same API, same Redis, same command.

Run: ``.venv/bin/python -m bench.batch [--duration 10] [--size 1000]``

Starts a private redis-server and the broker's API (one worker process, pinned to one CPU) with
three sites and no workers, so every accepted job stays where intake put it. Each row starts
from an empty job store and counts what is really there afterwards: a job counts only if its
record, its indexes and its RQ submission are in Redis. Target (issue 15): batch >= 10x single.
"""

from __future__ import annotations

import argparse
import json

import httpx
import redis

from bench.common import HEADER, Load, Stack, generator_name, header, load, write_config
from bench.intake import BODY, HEADERS, TOKEN, sites

TARGET = 10.0


def _clear(r: redis.Redis) -> None:
    for key in [*r.scan_iter("bench:job*", count=1000), *r.scan_iter("rq:*", count=1000)]:
        r.delete(key)


def _durable(r: redis.Redis) -> int:
    """Jobs written whole: record, NEW index, RQ job and its place on the submit queue."""
    records = sum(1 for _ in r.scan_iter("bench:job:*", count=1000))
    rq_jobs = sum(1 for _ in r.scan_iter("rq:job:submit-*", count=1000))
    return min(records, int(r.zcard("bench:jobs:all")), int(r.zcard("bench:jobs:state:NEW")), rq_jobs,
               int(r.llen("rq:queue:superfed-submit")))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--size", type=int, default=1000, help="jobs in a batch")
    p.add_argument("--connections", type=int, default=50, help="for the single-job row")
    p.add_argument("--batch-connections", type=int, default=4)
    args = p.parse_args(argv)
    job = json.loads(BODY)
    # jobs that differ as a parameter sweep's do (their names and arguments), so that nothing of
    # a job's own is shared between them
    jobs = [{**job, "spec": {**job["spec"], "name": f"bench-{i}", "arguments": ["-f", f"--point={i}"]}}
            for i in range(args.size)]
    batch = json.dumps({"jobs": jobs}).encode()
    header(f"batch intake: POST /api/v1/jobs ({args.connections} connections) against POST /api/v1/jobs/batch "
           f"({args.size:,} jobs a request, {args.batch_connections} connections), {args.duration:.0f} s per row")
    print(f"   load generator: {generator_name()}; batch body {len(batch) / 1024:.0f} KiB")
    with Stack("batch", deadline=120 + 4 * args.duration) as st:
        redis_url = st.redis()
        cfg = write_config(st.dir / "bench.toml", redis_url=redis_url, sites=sites(), tokens={"submitter": TOKEN},
                           api={"rate_limit_per_minute": 0, "max_body_bytes": max(len(batch) * 2, 1 << 20)})
        api = st.api(cfg)
        first = httpx.post(f"{api}/api/v1/jobs/batch", content=batch, headers=HEADERS, timeout=30)
        assert first.status_code == 200 and first.json()["accepted"] == args.size, first.text[:500]
        r = redis.Redis.from_url(redis_url)
        rows: list[tuple[Load, int, int]] = []  # the run, jobs a request, jobs durable afterwards
        for what, url, body, conns, size in (
            ("single: POST /api/v1/jobs", f"{api}/api/v1/jobs", BODY, args.connections, 1),
            (f"batch: POST /api/v1/jobs/batch ({args.size:,} jobs)", f"{api}/api/v1/jobs/batch", batch,
             args.batch_connections, args.size),
        ):
            _clear(r)
            run = load(what, url, method="POST", headers=HEADERS, body=body, connections=conns,
                       duration=args.duration, server_pid=st.pid("api"), warmup=0)
            rows.append((run, size, _durable(r)))
        r.close()
    print(HEADER)
    for run, _size, _n in rows:
        print(run.row())
    print(f"   {'':<44} {'jobs/s':>10} {'CPU µs/job':>11} {'durable':>9} {'answered':>9}")
    rates = []
    ok = True
    for run, size, durable in rows:
        answered = (run.requests - run.bad) * size
        rate = answered / (run.requests / run.rps) if run.rps else 0.0
        rates.append(rate)
        cpu = (run.cpu_us or 0.0) / size
        print(f"   {run.what:<44} {rate:>10,.0f} {cpu:>11.1f} {durable:>9,} {answered:>9,}")
        ok = ok and run.bad == 0 and durable >= answered
    ratio = rates[1] / rates[0] if rates[0] else 0.0
    met = ok and ratio >= TARGET
    print(f"batch: {rates[1]:,.0f} jobs/s batched against {rates[0]:,.0f} one a request: {ratio:.1f}x "
          f"(target >= {TARGET:.0f}x), every answered job durable: {ok}: {'met' if met else 'NOT met'}")
    return 0 if met else 1



if __name__ == "__main__":
    raise SystemExit(main())
