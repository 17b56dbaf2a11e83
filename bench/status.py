"""``GET /api/v1/status`` with 10 sites against a bare Litestar JSON endpoint.

Run: ``.venv/bin/python bench/status.py [--server uvicorn|granian] [--duration 10]``

Starts a private redis-server, the broker's API (one worker process, pinned to one CPU) with
10 sites whose health records are written straight into Redis (no facility is needed to read
health), and bench/bare.py on the same server and settings. The bare app's ``/status``
serves the very bytes the broker answered, so the ratio measures what the broker's work
costs (token check, Redis reads, the health verdicts), not the size of the answer.
Target (DESIGN.md): at least 0.5 of the baseline's requests/s, p99 under 10 ms, at 100
connections. The rate limit is switched off in the bench config (it is a per-token quota;
its Redis round trip is the token check's, which stays).
"""

from __future__ import annotations

import argparse
import time

import httpx
import msgspec
import redis

from bench.common import HEADER, Stack, generator_name, header, load, write_config
from broker.health import HealthRecord
from broker.store.keys import Keys

TOKEN = "bench-viewer-token-0000000000"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KINDS = ("sfapi", "firecrest", "iri")


def site(i: int) -> dict[str, object]:
    kind = KINDS[i % 3]
    auth: dict[str, str] = {
        "sfapi": {"client_id": "abcdefghijklm", "private_key_env": "BENCH_NOPE"},
        "firecrest": {"client_id": "bench", "token_url": "http://127.0.0.1:9/token", "client_secret_env": "BENCH_NOPE"},
        "iri": {"token_env": "BENCH_NOPE"},
    }[kind]
    return {"name": f"site-{i:02d}", "kind": kind, "url": "http://127.0.0.1:9/api", "systems": ["machine"],
            "health_interval": 60.0, "auth": auth}


def health_record(name: str, i: int, now: float) -> HealthRecord:
    from adapters.types import ComponentHealth, Incident

    comps = [ComponentHealth("compute", "degraded" if i % 4 == 0 else "up", "batch queue slow" if i % 4 == 0 else ""),
             ComponentHealth("filesystem", "up", ""), ComponentHealth("login", "up", ""),
             ComponentHealth("scheduler", "up", "")]
    incidents = [Incident(id=f"inc-{i}", summary="scheduled maintenance", component="compute", kind="planned",
                          status="active", start="2025-01-01T00:00:00Z")] if i % 4 == 0 else []
    return HealthRecord(site=name, state="degraded" if i % 4 == 0 else "up", components=comps, incidents=incidents,
                        checked_at=now, ok_at=now, latency_ms=3.2, failures=0,
                        allocations={"m0001": 12000.0})


def seed_health(redis_url: str, n: int) -> None:
    r = redis.Redis.from_url(redis_url)
    keys = Keys("bench")
    now = time.time()
    for i in range(1, n + 1):
        name = f"site-{i:02d}"
        r.set(keys.health(name), msgspec.json.encode(health_record(name, i, now)))
    r.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    p.add_argument("--sites", type=int, default=10)
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--rate", type=float, default=2000, help="requests/s of the paced latency rows")
    args = p.parse_args(argv)
    header(f"status: GET /api/v1/status, {args.sites} sites, {args.connections} connections, "
           f"{args.duration:.0f} s per row, server {args.server} (1 worker)")
    print(f"   load generator: {generator_name()}")
    with Stack("status", deadline=120 + 8 * args.duration) as st:
        redis_url = st.redis()
        cfg = write_config(st.dir / "bench.toml", redis_url=redis_url,
                           sites=[site(i) for i in range(1, args.sites + 1)], tokens={"viewer": TOKEN},
                           api={"rate_limit_per_minute": 0})
        api = st.api(cfg, server=args.server)
        seed_health(redis_url, args.sites)
        first = httpx.get(f"{api}/api/v1/status", headers=AUTH, timeout=10)
        first.raise_for_status()
        states = [s["state"] for s in first.json()["sites"]]
        assert len(states) == args.sites and "unknown" not in states, states
        body = st.dir / "status.json"
        body.write_bytes(first.content)
        bare = st.bare(server=args.server, body=body)
        assert httpx.get(f"{bare}/status", timeout=10).content.__len__() > 0
        rows = [
            load("bare Litestar GET /json", f"{bare}/json", connections=args.connections, duration=args.duration,
                 server_pid=st.pid("bare")),
            load("bare Litestar GET /status", f"{bare}/status", connections=args.connections,
                 duration=args.duration, server_pid=st.pid("bare")),
        ]
        spy = st.profile("api", args.duration + 2)
        rows.append(load("superfed GET /api/v1/status", f"{api}/api/v1/status", headers=AUTH,
                         connections=args.connections, duration=args.duration, server_pid=st.pid("api")))
        if spy:
            spy.wait(30)
        paced = [
            load(f"bare GET /status at {args.rate:,.0f}/s", f"{bare}/status", connections=args.connections,
                 duration=args.duration, rate=args.rate),
            load(f"superfed status at {args.rate:,.0f}/s", f"{api}/api/v1/status", headers=AUTH,
                 connections=args.connections, duration=args.duration, rate=args.rate),
        ]
    print(f"   answer: {len(first.content):,} bytes of JSON")
    print(f"   saturation rows: {generator_name()}, closed loop; paced rows: bench/loadgen.py, requests due "
          f"at a fixed rate, latency from when each was due")
    print(HEADER)
    for r in rows + paced:
        print(r.row())
    hello, base, ours = rows
    ratio = ours.rps / base.rps
    cpu_ratio = base.cpu_us / ours.cpu_us
    p99 = paced[1].p99_ms
    ok = ratio >= 0.5 and p99 < 10 and ours.bad == 0 and paced[1].bad == 0
    print(f"   vs hello world: {ours.rps / hello.rps:.2f}; server CPU per request, baseline/superfed: {cpu_ratio:.2f}")
    print(f"status: ratio {ratio:.2f} (target >= 0.5); p99 {p99:.2f} ms at {args.rate:,.0f} req/s and "
          f"{ours.p99_ms:.1f} ms flat out (target < 10 ms): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
