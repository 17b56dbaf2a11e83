"""Redis bytes per stored job, and the API's resident memory after 100,000 jobs.

Run: ``.venv/bin/python bench/memory.py [--jobs 100000]``

Starts a private redis-server and the API (no workers, so every job stays as intake wrote
it: the record, three index entries, the RQ job hash and its queue entry), posts ``--jobs``
jobs through the API with the load generator, and reads Redis ``used_memory`` and the API's
RSS (``/proc/PID/status``) before and after. ``MEMORY USAGE`` of one job's keys says where
the bytes go. The baseline is the empty broker in the same run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import redis

from bench.common import Stack, header, load, write_config
from bench.intake import BODY, HEADERS, TOKEN, sites


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=100_000)
    args = p.parse_args(argv)
    header(f"memory: {args.jobs:,} jobs through POST /api/v1/jobs, no workers")
    with Stack("memory", deadline=600) as st:
        redis_url = st.redis()
        cfg = write_config(st.dir / "bench.toml", redis_url=redis_url, sites=sites(), tokens={"submitter": TOKEN},
                           api={"rate_limit_per_minute": 0})
        api = st.api(cfg)
        r = redis.Redis.from_url(redis_url)
        load("warm-up", f"{api}/api/v1/jobs", method="POST", headers=HEADERS, body=BODY, connections=20,
             duration=1, warmup=0)
        for key in [*r.scan_iter("bench:job*"), *r.scan_iter("rq:*")]:
            r.delete(key)
        mem0 = int(r.info("memory")["used_memory"])
        rss0 = rss_kib(st.pid("api"))
        while (n := int(r.zcard("bench:jobs:all"))) < args.jobs:
            left = args.jobs - n
            load("fill", f"{api}/api/v1/jobs", method="POST", headers=HEADERS, body=BODY, connections=50,
                 duration=max(1.0, min(10.0, left / 2000)), warmup=0)
        n = int(r.zcard("bench:jobs:all"))
        mem1 = int(r.info("memory")["used_memory"])
        rss1 = rss_kib(st.pid("api"))
        one = r.zrange("bench:jobs:all", 0, 0)[0].decode()
        parts = {
            "job record (hash)": r.memory_usage(f"bench:job:{one}") or 0,
            "RQ job (hash)": r.memory_usage(f"rq:job:submit-{one}") or 0,
        }
        r.close()
    per_job = (mem1 - mem0) / n
    print(f"{'measure':<40} {'before':>12} {'after':>12} {'per job':>10}")
    print(f"{'Redis used_memory (bytes)':<40} {mem0:>12,} {mem1:>12,} {per_job:>10,.0f}")
    print(f"{'API RSS (KiB)':<40} {rss0:>12,} {rss1:>12,} {(rss1 - rss0) * 1024 / n:>10,.1f}")
    for what, b in parts.items():
        print(f"   MEMORY USAGE of one {what}: {b:,} bytes")
    print("   the rest per job: its 3 index entries (sorted sets), its queue entry, allocator overhead")
    print(f"memory: {per_job:,.0f} Redis bytes per stored job over {n:,} jobs; API RSS {rss1 / 1024:,.0f} MiB after "
          f"them ({(rss1 - rss0) / 1024:+,.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
