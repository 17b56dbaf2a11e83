"""What each ``[durability] level`` costs intake: jobs accepted per second, single and batch,
against level ``default``, in one command.

Run: ``.venv/bin/python -m bench.durability [--duration 5]``

Starts a private redis-server (AOF everysec) with one replica, then for each level an API
(one worker process, pinned to one CPU) over it: ``default``; ``replica`` (WAIT for the one
replica, on loopback: the cost of the wait itself, not of a network); ``disk`` (the server
switched to ``appendfsync always``: an fsync per write, here on whatever disk /tmp is).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

import redis

from bench.common import HEADER, Load, Stack, free_port, generator_name, header, load, write_config
from bench.intake import BODY, HEADERS, TOKEN, sites
from broker.demo import redis_server_args

LEVELS = ("default", "replica", "disk")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--size", type=int, default=1000, help="jobs in a batch")
    args = p.parse_args(argv)
    batch = json.dumps({"jobs": [json.loads(BODY)] * args.size}).encode()
    header(f"durability: POST /api/v1/jobs (50 connections) and /jobs/batch ({args.size:,} a request, "
           f"4 connections) at each [durability] level, {args.duration:.0f} s per row")
    print(f"   load generator: {generator_name()}")
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not on PATH"
    rows: dict[tuple[str, str], Load] = {}
    with Stack("durability", deadline=300 + 12 * args.duration) as st:
        port, rport = free_port(), free_port()
        for name, p_, extra in (("redis", port, []), ("replica", rport, ["--replicaof", "127.0.0.1", str(port)])):
            d = st.dir / name
            d.mkdir()
            st.spawn(name, redis_server_args(exe, p_, d, aof=True) + extra, port=p_)
        r = redis.Redis(port=port)
        with redis.Redis(port=rport) as rr:
            for _ in range(400):
                if rr.info("replication").get("master_link_status") == "up":
                    break
                time.sleep(0.05)
        for level in LEVELS:
            r.config_set("appendfsync", "always" if level == "disk" else "everysec")
            cfg = write_config(st.dir / f"{level}.toml", redis_url=f"redis://127.0.0.1:{port}/0", sites=sites(),
                               tokens={"submitter": TOKEN},
                               api={"rate_limit_per_minute": 0, "max_body_bytes": max(len(batch) * 2, 1 << 20)})
            # loopback servers of the benchmark's own, no password (a replica would need it on its command line)
            text = cfg.read_text()
            cfg.write_text(f"allow_unauthenticated_redis = true\n{text}\n[durability]\nlevel = \"{level}\"\n")
            api = st.api(cfg, name=f"api-{level}")
            print(f"   level {level}: API up", flush=True)
            for kind, url, body, conns in (("single", f"{api}/api/v1/jobs", BODY, 50),
                                           ("batch", f"{api}/api/v1/jobs/batch", batch, 4)):
                rows[(level, kind)] = load(f"{level}: {kind}", url, method="POST", headers=HEADERS, body=body,
                                           connections=conns, duration=args.duration,
                                           server_pid=st.pid(f"api-{level}"), warmup=1)
            st.kill(f"api-{level}")
            for key in [*r.scan_iter("bench:job*", count=1000), *r.scan_iter("rq:*", count=1000)]:
                r.delete(key)
        r.close()
    print(HEADER)
    for row in rows.values():
        print(row.row())
    ok = all(x.bad == 0 for x in rows.values())
    print(f"   {'level':<10} {'single jobs/s':>14} {'/ default':>10} {'batch jobs/s':>13} {'/ default':>10}")
    for level in LEVELS:
        s, b = rows[(level, "single")], rows[(level, "batch")]
        s0, b0 = rows[("default", "single")], rows[("default", "batch")]
        print(f"   {level:<10} {s.rps:>14,.0f} {s.rps / s0.rps:>10.2f} {b.rps * args.size:>13,.0f} "
              f"{b.rps / b0.rps:>10.2f}")
    print(f"durability: every answer a 202 (batch: 200): {ok}; ratios above are each level's intake rate "
          "against level default's, same command")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
