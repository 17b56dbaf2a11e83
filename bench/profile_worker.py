"""One worker's cost per submission, measured in-process: CPU ms per job, Redis round trips per
job, and (with ``--profile FILE``) cProfile's heaviest functions over the worker's loop and its RQ
threads together.

Run: ``.venv/bin/python -m bench.profile_worker [--jobs 1000] [--profile FILE]``

``superfed demo`` runs the simulated facilities, the API and two workers; the two are stopped
(SIGSTOP) once the sites' health is known, and a worker in this process takes over their leases
and drains the jobs. Jobs are accepted by a child process (the broker's intake function straight
into Redis) so that their cost is not counted here. A round trip is one command or pipeline
written to Redis (``send_packed_command`` of redis-py's sync and async connections), counted
in every thread of this process; HTTP requests are those of the adapters' httpx clients
(submissions, health checks, polls). Not a target: a tool for changes to broker/worker.py and the
submit task. With ``--profile`` CPU figures include cProfile's own overhead."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis
import redis.asyncio.connection as aconn
import redis.connection as sconn

from bench.common import PY, Stack, header
from bench.dispatch import start_demo
from broker.config import Settings, load
from broker.store.keys import Keys
from broker.worker import Worker

_CREATE = """
import sys, msgspec, redis
from bench.dispatch import SPEC
from broker.config import load
from broker.intake import create_job_sync
from broker.schemas import JobCreate
from broker.store.keys import Keys
s = load(sys.argv[1]); r = redis.Redis.from_url(sys.argv[2])
body = msgspec.convert({"project": "m0001", "spec": SPEC}, JobCreate)
for _ in range(int(sys.argv[3])):
    create_job_sync(r, Keys(s.namespace), s, body, "bench")
"""

trips: Counter[str] = Counter()


@contextlib.contextmanager
def counting_round_trips() -> Iterator[None]:
    sync_send, async_send = sconn.AbstractConnection.send_packed_command, aconn.AbstractConnection.send_packed_command

    def s(self: Any, *a: Any, **kw: Any) -> Any:
        trips["sync (RQ threads)"] += 1
        return sync_send(self, *a, **kw)

    async def a(self: Any, *args: Any, **kw: Any) -> Any:
        trips["async (loop)"] += 1
        return await async_send(self, *args, **kw)

    http_send = httpx.AsyncClient.send

    async def h(self: Any, *args: Any, **kw: Any) -> Any:
        trips["HTTP requests to the facilities"] += 1
        return await http_send(self, *args, **kw)

    sconn.AbstractConnection.send_packed_command = s  # type: ignore[method-assign]
    aconn.AbstractConnection.send_packed_command = a  # type: ignore[method-assign]
    httpx.AsyncClient.send = h  # type: ignore[method-assign]
    try:
        yield
    finally:
        sconn.AbstractConnection.send_packed_command = sync_send  # type: ignore[method-assign]
        aconn.AbstractConnection.send_packed_command = async_send  # type: ignore[method-assign]
        httpx.AsyncClient.send = http_send  # type: ignore[method-assign]


def demo_workers(config: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if b"worker" in cmd and config.encode() in cmd:
                pids.append(int(proc.name))
    return pids


async def until_none_new(r: redis.asyncio.Redis, keys: Keys, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await r.zcard(keys.jobs_by_state("NEW")) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def drive(settings: Settings, config: str, redis_url: str, n: int, profile: str | None) -> None:
    w = Worker(settings, name="profiled")
    task = asyncio.create_task(w.main())
    loop = asyncio.get_running_loop()

    async def create(count: int) -> None:
        proc = await asyncio.create_subprocess_exec(PY, "-c", _CREATE, config, redis_url, str(count))
        if await proc.wait():
            raise RuntimeError("creating jobs failed")

    await asyncio.sleep(1.0)
    await create(50)  # warm: adapters, tokens, site cache, connection pools
    await until_none_new(w.rt.redis, w.keys, 30)
    # CPU time of each thread, not wall time: a thread waiting for the GIL or a reply costs nothing
    profs = [cProfile.Profile(time.thread_time) for _ in range(3)]
    if profile:  # one per thread: the loop's and each RQ thread's (cProfile sees only its own)
        profs[0].enable()
        await loop.run_in_executor(w._waiter, profs[1].enable)
        await loop.run_in_executor(w._rq_io, profs[2].enable)
    trips.clear()
    cpu0, t0 = time.process_time(), time.monotonic()
    with counting_round_trips():
        await create(n)
        await until_none_new(w.rt.redis, w.keys, 200)
        cpu, span = time.process_time() - cpu0, time.monotonic() - t0
        counted = dict(trips)
    if profile:
        profs[0].disable()
        await loop.run_in_executor(w._waiter, profs[1].disable)
        await loop.run_in_executor(w._rq_io, profs[2].disable)
    w.request_stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 10)
    print(f"{n:,} jobs in {span:.2f} s ({n / span:,.0f} jobs/s, one worker, the job creator alongside); "
          f"CPU {cpu * 1000 / n:.2f} ms/job (this process, every thread)")
    http = counted.pop("HTTP requests to the facilities", 0)
    total = sum(counted.values())
    print(f"Redis round trips per job: {total / n:.2f} ("
          + ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(counted.items()))
          + f"); HTTP requests per job: {http / n:.2f}")
    if profile:
        st = pstats.Stats(profs[0])
        for p in profs[1:]:
            with contextlib.suppress(TypeError):  # a thread that never ran under its profiler
                st.add(p)
        st.dump_stats(profile)
        print(f"profile (pstats) in {profile}")
        st.sort_stats("tottime").print_stats(30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--profile", metavar="FILE", help="cProfile the worker (CPU time per thread) into FILE")
    args = ap.parse_args(argv)
    header(f"profile_worker: {args.jobs:,} submissions drained by one in-process worker")
    with Stack("profile-worker", deadline=300) as st:
        info = start_demo(st, 2)
        config = str(st.dir / "demo" / "superfed.toml")
        settings = load(config)
        stopped = demo_workers(config)
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(settings.worker.abandoned_after + 1.0)  # their leases run out
            threading.excepthook = lambda a: None  # RQ threads ending at the stop: not our business
            asyncio.run(drive(settings, config, info["redis"], args.jobs, args.profile))
        finally:
            for pid in stopped:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGCONT)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
