"""``POST /api/v1/jobs`` accepted per second against a bare Litestar endpoint that only
decodes the same body.

Run: ``.venv/bin/python bench/intake.py [--server uvicorn|granian] [--duration 10]``

Starts a private redis-server and the broker's API (one worker process, pinned to one CPU)
with three sites and no workers, so every accepted job stays where intake put it; then counts
what is really there: the job records, their indexes and their RQ submissions. A 202 counts
only if the job is durable in Redis and enqueued. Target (DESIGN.md): at least 1,000/s.
"""

from __future__ import annotations

import argparse
import json

import httpx
import redis

from bench.common import HEADER, Stack, generator_name, header, load, write_config

TOKEN = "bench-submitter-token-000000000"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
BODY = json.dumps({
    "project": "m0001",
    "spec": {"executable": "/bin/hostname", "name": "bench", "arguments": ["-f"],
             "environment": {"OMP_NUM_THREADS": "4"}, "resources": {"node_count": 2},
             "attributes": {"duration": 600, "queue_name": "regular"}},
}).encode()


def sites() -> list[dict[str, object]]:
    return [
        {"name": "nersc", "kind": "sfapi", "url": "http://127.0.0.1:9/api/v1.2", "systems": ["perlmutter"],
         "auth": {"client_id": "abcdefghijklm", "private_key_env": "BENCH_NOPE"}},
        {"name": "cscs", "kind": "firecrest", "url": "http://127.0.0.1:9", "systems": ["daint"],
         "auth": {"client_id": "bench", "token_url": "http://127.0.0.1:9/token", "client_secret_env": "BENCH_NOPE"}},
        {"name": "alcf", "kind": "iri", "url": "http://127.0.0.1:9", "systems": ["polaris"],
         "auth": {"token_env": "BENCH_NOPE"}},
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--duration", type=float, default=10)
    args = p.parse_args(argv)
    header(f"intake: POST /api/v1/jobs, {args.connections} connections, {args.duration:.0f} s per row, "
           f"server {args.server} (1 worker), no workers running")
    print(f"   load generator: {generator_name()}")
    with Stack("intake", deadline=120 + 4 * args.duration) as st:
        redis_url = st.redis()
        cfg = write_config(st.dir / "bench.toml", redis_url=redis_url, sites=sites(), tokens={"submitter": TOKEN},
                           api={"rate_limit_per_minute": 0})
        api = st.api(cfg, server=args.server)
        bare = st.bare(server=args.server)
        first = httpx.post(f"{api}/api/v1/jobs", content=BODY, headers=HEADERS, timeout=10)
        assert first.status_code == 202, first.text
        assert httpx.post(f"{bare}/jobs", content=BODY, headers=HEADERS, timeout=10).status_code == 202
        r = redis.Redis.from_url(redis_url)
        # the checks above left a job: start from none (tokens and sites stay)
        for key in [*r.scan_iter("bench:job*"), *r.scan_iter("rq:*")]:
            r.delete(key)
        rows = [load("bare Litestar POST /jobs (decode)", f"{bare}/jobs", method="POST", headers=HEADERS, body=BODY,
                     connections=args.connections, duration=args.duration, server_pid=st.pid("bare"))]
        spy = st.profile("api", args.duration + 1)
        ours = load("superfed POST /api/v1/jobs", f"{api}/api/v1/jobs", method="POST", headers=HEADERS, body=BODY,
                    connections=args.connections, duration=args.duration, server_pid=st.pid("api"), warmup=1)
        if spy:
            spy.wait(30)
        rows.append(ours)
        jobs = r.zcard("bench:jobs:all")
        records = sum(1 for _ in r.scan_iter("bench:job:*", count=1000))
        queued = r.llen("rq:queue:superfed-submit")
        rq_jobs = sum(1 for _ in r.scan_iter("rq:job:submit-*", count=1000))
        new = r.zcard("bench:jobs:state:NEW")
        r.close()
    print(HEADER)
    for row in rows:
        print(row.row())
    accepted = ours.requests - ours.bad
    durable = min(jobs, records, queued, rq_jobs, new)
    print(f"   in Redis afterwards (1 s warm-up included): {records:,} job records, {jobs:,} in the all-jobs index, "
          f"{new:,} NEW, {rq_jobs:,} RQ jobs, {queued:,} on the submit queue; "
          f"{accepted:,} 202s counted in the measured run")
    consistent = records == jobs == new == rq_jobs == queued and durable >= accepted
    rate = ours.rps if ours.bad == 0 else accepted / max(1e-9, ours.requests / ours.rps)
    ok = rate >= 1000 and consistent
    print(f"   superfed / bare: {ours.rps / rows[0].rps:.2f} of the requests/s; records consistent: {consistent}")
    print(f"intake: {rate:,.0f} accepted/s (target >= 1,000), every 202 durable and enqueued: "
          f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
