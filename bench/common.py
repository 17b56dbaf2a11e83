"""What every benchmark shares: the machine's description, a stack of processes that is always
stopped (process groups, a hard deadline), CPU pinning, config files, and the load generator.

Layout on a machine with 2+ CPUs: the server under test is pinned to CPU 0 (``taskset``);
the load generator and Redis share CPU 1, so the server has one core to itself. With one CPU
nothing is pinned and the figures say so.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.config_export import dumps as toml_dumps
from broker.demo import new_redis_password, redis_server_args, redis_url_for
from broker.procs import Procs
from broker.procs import free_port as free_port  # re-exported for the benchmarks
from broker.procs import wait_port as wait_port

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout, no install

PY = sys.executable
NPROC = os.cpu_count() or 1
TASKSET = shutil.which("taskset")
PINNING = bool(TASKSET) and NPROC >= 2
SERVER_CPU = 0
LOAD_CPU = 1 if NPROC >= 2 else 0


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"nproc {NPROC}, {cpu}, Python {platform.python_version()}"


def pinned(args: Sequence[str], cpu: int | None) -> list[str]:
    if cpu is None or not PINNING:
        return list(args)
    return [TASKSET or "taskset", "-c", str(cpu), *args]


class Stack:
    """Processes a benchmark starts, each in its own process group; all of them are killed
    when the ``with`` block ends, on SIGINT/SIGTERM, or when ``deadline`` seconds have
    passed (then the benchmark exits with status 3: a bench never hangs)."""

    def __init__(self, name: str, deadline: float = 300):
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"superfed-bench-{name}-"))
        self.procs = Procs(self.dir)
        self._deadline = deadline
        self._done = threading.Event()

    def __enter__(self) -> Stack:
        threading.Thread(target=self._watchdog, daemon=True).start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop()
        raise SystemExit(128 + signum)

    def _watchdog(self) -> None:
        if not self._done.wait(self._deadline):
            print(
                f"bench {self.name}: over its {self._deadline:.0f} s deadline; stopping everything",
                file=sys.stderr,
                flush=True,
            )
            self.stop()
            os._exit(3)

    def spawn(
        self,
        name: str,
        args: Sequence[str],
        *,
        cpu: int | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        return self.procs.spawn(name, pinned(args, cpu), port=port, env=env, cwd=ROOT).proc

    def tail(self, name: str, n: int = 1500) -> str:
        return self.procs.get(name).tail(n)

    def kill(self, name: str) -> None:
        self.procs.remove(name)

    def stop(self) -> None:
        self.procs.stop(5)

    def pid(self, name: str) -> int:
        return self.procs.get(name).pid

    def profile(self, name: str, seconds: float) -> subprocess.Popen[bytes] | None:
        """With BENCH_PROFILE=DIR and py-spy installed, sample ``name`` (and its children) for
        ``seconds`` into DIR/<name>.txt (collapsed stacks, for flame graphs or grep); with
        BENCH_PROFILE_GIL=1 only threads holding the GIL (CPU, not waits)."""
        out = os.environ.get("BENCH_PROFILE")
        spy = shutil.which("py-spy") or str(Path(PY).with_name("py-spy"))
        if not out or not Path(spy).exists():
            return None
        Path(out).mkdir(parents=True, exist_ok=True)
        gil = ["--gil"] if os.environ.get("BENCH_PROFILE_GIL") else []  # CPU only: threads holding the GIL
        return subprocess.Popen(
            [
                spy,
                "record",
                *gil,
                "--subprocesses",
                "-r",
                "200",
                "-d",
                str(int(seconds)),
                "-f",
                "raw",
                "-o",
                str(Path(out) / f"{name}.txt"),
                "-p",
                str(self.pid(name)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    # -- parts ----------------------------------------------------------------------------
    def redis(self, cpu: int | None = None) -> str:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not on PATH (apt-get install -y redis-server)")
        port = free_port()
        password = new_redis_password()  # an ACL user, as the broker wants outside a demo
        self.spawn("redis", redis_server_args(exe, port, self.dir, password=password), cpu=cpu, port=port)
        return redis_url_for(port, password)

    def api(self, config: Path, *, cpu: int | None = SERVER_CPU, server: str = "uvicorn", name: str = "api") -> str:
        port = free_port()
        self.spawn(
            name,
            [PY, "-m", "broker.cli", "serve", "--config", str(config), "--port", str(port), "--server", server],
            cpu=cpu,
            port=port,
        )
        return f"http://127.0.0.1:{port}"

    def bare(self, *, cpu: int | None = SERVER_CPU, server: str = "uvicorn", body: Path | None = None) -> str:
        """The baseline: a bare Litestar app (bench/bare.py) on the same server and settings."""
        port = free_port()
        env = {"BENCH_BARE_BODY": str(body)} if body else None
        self.spawn(
            "bare",
            [PY, str(ROOT / "bench" / "bare.py"), "--port", str(port), "--server", server],
            cpu=cpu,
            port=port,
            env=env,
        )
        return f"http://127.0.0.1:{port}"


def write_config(
    path: Path,
    *,
    redis_url: str,
    sites: list[dict[str, Any]],
    tokens: dict[str, str],
    api: dict[str, Any] | None = None,
    worker: dict[str, Any] | None = None,
    placement: dict[str, Any] | None = None,
) -> Path:
    """A superfed TOML config; ``tokens`` maps role -> token (each with every project)."""
    data: dict[str, Any] = {
        "redis_url": redis_url,
        "namespace": "bench",
        "api": api,
        "worker": worker,
        "placement": placement,
    }
    data["tokens"] = [{"name": f"bench-{r}", "role": r, "projects": ["*"], "token": t} for r, t in tokens.items()]
    data["sites"] = sites
    path.write_text(toml_dumps(data))
    path.chmod(0o600)
    return path


# -- CPU accounting -------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d.name))
    return kids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants (a granian worker is a child)."""
    tick = os.sysconf("SC_CLK_TCK")
    kids = _children()
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        todo += kids.get(p, [])
    return total


# -- load generation ------------------------------------------------------------------------
@dataclass
class Load:
    """One load run's figures."""

    what: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int  # non-2xx answers and socket errors
    generator: str
    cpu_us: float = float("nan")  # the server's CPU time per request (robust to a busy machine)

    def row(self) -> str:
        return (
            f"{self.what:<34} {self.rps:>10,.0f} {self.p50_ms:>8.2f} {self.p99_ms:>8.2f}"
            f" {self.requests:>9,} {self.bad:>6} {self.cpu_us:>11.0f}"
        )


HEADER = f"{'endpoint':<34} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'bad':>6} {'CPU µs/req':>11}"


def generator_name() -> str:
    if shutil.which("wrk") and not os.environ.get("BENCH_NO_WRK"):
        return "wrk (1 thread)"
    return "bench/loadgen.py (asyncio + raw HTTP/1.1, keep-alive; wrk not found)"


def load(
    what: str,
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    connections: int = 100,
    duration: float = 10,
    warmup: float = 2,
    server_pid: int | None = None,
    rate: float | None = None,
) -> Load:
    """Drive ``url`` with keep-alive connections; the generator is pinned to LOAD_CPU. With
    ``server_pid``, the server's CPU time per request is measured too (warm-up excluded).
    With ``rate``, requests start at that many a second (bench/loadgen.py's paced mode) and
    latency counts from when each was due."""
    headers = headers or {}
    if rate:

        def run(*a: Any) -> Load:
            return _loadgen(*a, rate=rate)
    else:
        run = _wrk if shutil.which("wrk") and not os.environ.get("BENCH_NO_WRK") else _loadgen
    if warmup > 0:
        run(what, url, method, headers, body, connections, warmup)
    cpu0 = cpu_seconds(server_pid) if server_pid else 0.0
    result = run(what, url, method, headers, body, connections, duration)
    if server_pid and result.requests:
        result.cpu_us = (cpu_seconds(server_pid) - cpu0) / result.requests * 1e6
    return result


def _wrk(
    what: str, url: str, method: str, headers: dict[str, str], body: bytes | None, connections: int, duration: float
) -> Load:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(f"wrk.method = {json.dumps(method)}\n")
        if body is not None:
            f.write(f"wrk.body = {json.dumps(body.decode())}\n")
        for k, v in headers.items():
            f.write(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n")
        script = f.name
    try:

        def run(seconds: float) -> str:
            args = pinned(
                [
                    "wrk",
                    "-t1",
                    f"-c{connections}",
                    f"-d{max(1, round(seconds))}s",
                    "--latency",
                    "--timeout",
                    "5s",
                    "-s",
                    script,
                    url,
                ],
                LOAD_CPU,
            )
            return subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout

        out = run(duration)
    finally:
        os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        bad += sum(int(x) for x in m.groups())

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else (v * 1000 if unit == "s" else v)

    return Load(what, rps, pct("50"), pct("99"), total, bad, "wrk")


def _loadgen(
    what: str,
    url: str,
    method: str,
    headers: dict[str, str],
    body: bytes | None,
    connections: int,
    duration: float,
    rate: float | None = None,
) -> Load:
    spec = {
        "url": url,
        "method": method,
        "headers": headers,
        "body": body.decode() if body else None,
        "connections": connections,
        "duration": duration,
        "rate": rate,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:  # a batch's body is too long for argv
        f.write(json.dumps(spec))
        f.flush()
        args = pinned([PY, str(ROOT / "bench" / "loadgen.py"), "@" + f.name], LOAD_CPU)
        out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    r = json.loads(out)
    return Load(
        what,
        r["rps"],
        r["p50_ms"],
        r["p99_ms"],
        r["requests"],
        r["bad"],
        "loadgen" + (f" paced {rate:.0f}/s" if rate else ""),
    )


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - t0)


def header(title: str) -> None:
    print(f"== {title}")
    print(f"   machine: {machine()}")
    pin = (
        f"server pinned to CPU {SERVER_CPU}, load generator on CPU {LOAD_CPU} (taskset); Redis, workers and "
        f"simulators unpinned"
        if PINNING
        else "no pinning (taskset missing or one CPU): server and load share the CPU(s)"
    )
    print(f"   {pin}")


def workers_cpu(config: str) -> float:
    """CPU seconds (user + system) used so far by the demo's worker processes."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if b"worker" in cmd and config.encode() in cmd:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total
