"""Real servers on loopback for tests: in a thread (an ASGI app) or as a subprocess."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from broker.demo import new_redis_password, redis_server_args, redis_url_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


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
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("threaded server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Proc:
    """A subprocess in its own process group, killed with everything it started."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        cwd: str | None = None,
    ):
        self.args = list(args)
        self.port = port
        self.log = log
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        if log:
            out.close()  # type: ignore[union-attr]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 20.0) -> Proc:
        if self.port is not None:
            try:
                wait_for_port(self.port, timeout, self.proc)
            except Exception:
                self.stop()
                raise RuntimeError(f"{self.args[:4]} did not start: {self.tail()}") from None
        return self

    def tail(self, n: int = 2000) -> str:
        if self.log and self.log.exists():
            return self.log.read_bytes()[-n:].decode(errors="replace")
        return ""

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(5)
        # whatever it left in its group
        self.signal(signal.SIGKILL)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(5)


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
