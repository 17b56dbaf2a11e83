"""The simulated facilities: submissions accepted per second on one core, and the time of one
status query over 1,000 jobs.

Run: ``.venv/bin/python bench/simulators.py [--kinds sfapi,firecrest,iri] [--duration 5]``

Each simulator runs alone, pinned to one CPU. Submissions: the load generator posts the same
job over and over with keep-alive connections (SF API: ``POST /compute/jobs/perlmutter``,
whose answer is a task id, the job being queued at once; FirecREST v2: ``POST
/compute/daint/jobs``; IRI: ``POST /api/v1/compute/job/{polaris}``). Status: after
``/_sim/reset`` and 1,000 submissions, the one request a client makes to read them all
(SF API ``GET /compute/jobs/perlmutter?sacct=true&cached=false``, since the cache would hide the
newest jobs; FirecREST ``GET /compute/daint/jobs``; IRI ``POST
/api/v1/compute/status/{polaris}?limit=1000``), timed 30 times one after another.
Targets (issue 2): at least 2,000 submissions/s on one core; status over 1,000 jobs under 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from bench.common import HEADER, Load, Stack, free_port, generator_name, header, load
from simulators.iri.catalog import resource_id

CLIENT_ID = "superfedbench"  # 13 characters, as NERSC's are
# what each facility requires: Perlmutter an architecture (-C), CSCS an account (-A)
SCRIPT = "#!/bin/bash\n#SBATCH -N 1\n#SBATCH -t 00:10:00\n#SBATCH -C cpu\n#SBATCH -A m0001\nsleep 3600\n"


@dataclass
class Target:
    kind: str
    url: str
    headers: dict[str, str]
    submit_path: str
    submit_body: bytes
    submit_ctype: str
    list_method: str
    list_path: str


def _sfapi_token(url: str, key_pem: bytes) -> str:
    import jwt

    token_url = f"{url}/c2id/token"
    now = int(time.time())
    assertion = jwt.encode({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": token_url, "iat": now, "exp": now + 300,
                            "jti": uuid.uuid4().hex}, key_pem, algorithm="RS256")
    r = httpx.post(token_url, data={"grant_type": "client_credentials", "client_assertion": assertion,
                                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    r.raise_for_status()
    return str(r.json()["access_token"])


def start(st: Stack, kind: str) -> Target:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from bench.common import PY

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [PY, "-m", "broker.cli", "sim", kind, "--port", str(port), "--time-scale", "1", "--nodes", "64",
            "--token-ttl", "3600"]
    if kind == "sfapi":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = st.dir / "sfapi.pub.pem"
        pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        st.spawn(f"sim-{kind}", [*args, "--client-id", CLIENT_ID, "--public-key", str(pub)], cpu=0, port=port)
        token = _sfapi_token(url, pem)
        body = urlencode({"job": SCRIPT, "isPath": "false"})
        return Target(kind, url, {"Authorization": f"Bearer {token}"}, "/api/v1.2/compute/jobs/perlmutter",
                      body.encode(), "application/x-www-form-urlencoded", "GET",
                      "/api/v1.2/compute/jobs/perlmutter?sacct=true&cached=false")
    if kind == "firecrest":
        secret = secrets.token_urlsafe(16)
        sf = st.dir / "fc-secret"
        sf.write_text(secret)
        st.spawn(f"sim-{kind}", [*args, "--client-id", "bench", "--client-secret-file", str(sf)], cpu=0, port=port)
        r = httpx.post(f"{url}/auth/token", data={"grant_type": "client_credentials", "client_id": "bench",
                                                  "client_secret": secret})
        r.raise_for_status()
        body = json.dumps({"job": {"script": SCRIPT, "workingDirectory": "/home/superfed", "name": "bench"}})
        return Target(kind, url, {"Authorization": f"Bearer {r.json()['access_token']}"}, "/compute/daint/jobs",
                      body.encode(), "application/json", "GET", "/compute/daint/jobs")
    token = secrets.token_urlsafe(24)
    st.spawn(f"sim-{kind}", [*args, "--token", token], cpu=0, port=port)
    rid = resource_id("polaris")
    attributes = {"duration": 600, "queue_name": "debug", "account": "m0001",
                  "custom_attributes": {"filesystems": "home"}}
    body = json.dumps({"executable": "/bin/sleep", "arguments": ["3600"], "name": "bench",
                       "resources": {"node_count": 1}, "attributes": attributes})
    return Target(kind, url, {"Authorization": f"Bearer {token}"}, f"/api/v1/compute/job/{rid}", body.encode(),
                  "application/json", "POST", f"/api/v1/compute/status/{rid}?limit=1000")


async def _fill(t: Target, n: int) -> None:
    headers = {**t.headers, "Content-Type": t.submit_ctype}
    async with httpx.AsyncClient(base_url=t.url, headers=headers, timeout=30) as c:
        sem = asyncio.Semaphore(20)

        async def one() -> None:
            async with sem:
                r = await c.post(t.submit_path, content=t.submit_body)
                r.raise_for_status()

        await asyncio.gather(*(one() for _ in range(n)))


def status_times(t: Target, n_jobs: int, repeats: int) -> tuple[int, list[float]]:
    httpx.post(f"{t.url}/_sim/reset").raise_for_status()
    asyncio.run(_fill(t, n_jobs))
    seen = 0
    times = []
    with httpx.Client(base_url=t.url, headers=t.headers, timeout=30) as c:
        for _ in range(repeats + 2):
            t0 = time.perf_counter()
            r = c.request(t.list_method, t.list_path, content=b"" if t.list_method == "POST" else None)
            dt = time.perf_counter() - t0
            r.raise_for_status()
            body = r.json()
            rows = body if isinstance(body, list) else (body.get("output") or body.get("jobs") or [])
            seen = len(rows)
            times.append(dt)
    return seen, times[2:]  # the first two warm the caches


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", default="sfapi,firecrest,iri")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--jobs", type=int, default=1000)
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    header(f"simulators: submissions/s ({args.connections} connections, {args.duration:.0f} s) and one status "
           f"query over {args.jobs:,} jobs; each simulator alone on CPU 0")
    print(f"   load generator: {generator_name()}")
    subs: list[Load] = []
    stats: list[tuple[str, int, list[float]]] = []
    with Stack("simulators", deadline=120 + len(kinds) * (3 * args.duration + 60)) as st:
        for kind in kinds:
            t = start(st, kind)
            seen, times = status_times(t, args.jobs, 30)
            stats.append((kind, seen, times))
            subs.append(load(f"{kind} submit", t.url + t.submit_path, method="POST",
                             headers={**t.headers, "Content-Type": t.submit_ctype}, body=t.submit_body,
                             connections=args.connections, duration=args.duration, warmup=1,
                             server_pid=st.pid(f"sim-{kind}")))
            st.kill(f"sim-{kind}")
    print(HEADER)
    for row in subs:
        print(row.row())
    print(f"{'status over N jobs':<34} {'jobs':>10} {'p50 ms':>8} {'max ms':>8}")
    for kind, seen, times in stats:
        print(f"{kind + ' list':<34} {seen:>10,} {statistics.median(times) * 1000:>8.2f} {max(times) * 1000:>8.2f}")
    best_sub = max(subs, key=lambda r: r.rps)
    ok_sub = all(r.rps >= 2000 and r.bad == 0 for r in subs)
    ok_status = all(seen >= args.jobs and statistics.median(times) < 0.020 for _, seen, times in stats)
    subs_txt = ", ".join(f"{r.what.split()[0]} {r.rps:,.0f}/s" for r in subs)
    stat_txt = ", ".join(f"{k} {statistics.median(t) * 1000:.1f} ms" for k, _, t in stats)
    print(f"simulators: submissions {subs_txt} (target >= 2,000/s; best {best_sub.rps:,.0f}); status over "
          f"{args.jobs:,} jobs p50 {stat_txt} (target < 20 ms): {'met' if ok_sub and ok_status else 'NOT met'}")
    return 0 if ok_sub and ok_status else 1


if __name__ == "__main__":
    raise SystemExit(main())


