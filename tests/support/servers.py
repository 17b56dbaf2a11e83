"""Real servers on loopback for tests: in a thread (an ASGI app) or as a subprocess
(``broker.procs.Proc``, the same supervision the demo and the benchmarks use)."""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from broker.demo import new_redis_password, redis_server_args, redis_url_for

# the one process-supervision module, shared with the demo and the benchmarks
from broker.procs import Proc, free_port, wait_until

__all__ = ["Proc", "ThreadedServer", "free_port", "get_json", "running", "start_redis", "superfed", "wait_until"]


class ThreadedServer:
    """Runs an ASGI app under uvicorn in a daemon thread; ``url`` is its base URL."""

    def __init__(self, app: Any, port: int | None = None, **options: Any):
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False, lifespan="on", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()

        def started() -> bool:
            if not self.thread.is_alive():
                raise RuntimeError("threaded server did not start")
            return bool(self.server.started)

        wait_until(started, timeout=15, interval=0.02, what="the threaded server starting")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def superfed(*args: str) -> list[str]:
    """The command line of the ``superfed`` CLI in this interpreter."""
    return [sys.executable, "-m", "broker.cli", *args]


def start_redis(
    tmp: Path, *, port: int | None = None, aof: bool = False, password: str | None = None, open_access: bool = False
) -> tuple[Proc, str]:
    """A private redis-server and its URL. It has an ACL user with ``password`` (a fresh one
    by default; the broker refuses a Redis anyone can use), or none with ``open_access``."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not on PATH (apt-get install -y redis-server)")
    port = port or free_port()
    if not open_access:
        password = password or new_redis_password()
    args = redis_server_args(exe, port, tmp, aof=aof, password=None if open_access else password)
    proc = Proc(args, port=port, log=tmp / "redis.log").wait_ready()
    return proc, redis_url_for(port, None if open_access else password)


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    try:
        yield
    finally:
        for p in reversed(procs):
            p.stop()


def get_json(url: str, **kw: Any) -> Any:
    r = httpx.get(url, timeout=10, **kw)
    r.raise_for_status()
    return r.json()
