"""Process supervision, shared by ``superfed demo``, the benchmarks and the tests: start a
process in its own process group with its output in a log, wait until it listens, stop it
and everything it started; restart one that ends on its own (``Restart``); and one bounded wait
for any condition.

Each process gets its own session (``start_new_session``) so that stopping it also stops
whatever it forked (RQ's work horses, uvicorn's workers): the signal goes to the group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "the condition",
    last: Callable[[], str] | None = None,
) -> T:
    """Call ``condition`` until it returns something truthy (returned) or ``timeout`` seconds
    pass (TimeoutError naming ``what`` and, when given, ``last()``: what was seen last). An
    exception from ``condition`` is not caught: the caller decides what is fatal."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            seen = f" (last: {last()})" if last is not None else ""
            raise TimeoutError(f"{what} did not happen within {timeout:g} s{seen}")
        time.sleep(interval)


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it is free on loopback, else any free port."""
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_taken(port: int) -> bool:
    """Whether a server could not listen on ``port`` on loopback (SO_REUSEADDR, as uvicorn and
    redis-server set it, so a port left in TIME_WAIT by a recent run reads free)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, what: str = "the process",
              timeout: float = 30) -> None:
    """Until something listens on ``port``; RuntimeError if ``proc`` exits first or in time."""

    def up() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        return listening(port)

    try:
        wait_until(up, timeout=timeout, what=f"{what} listening on port {port}")
    except TimeoutError:
        raise RuntimeError(f"{what} is not listening on port {port} after {timeout:.0f} s") from None


class Proc:
    """A subprocess in its own process group, its output appended to ``log`` (or dropped)."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        name: str = "",
        port: int | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        cwd: str | Path | None = None,
    ):
        self.args = list(args)
        self.name = name or Path(self.args[0]).name
        self.port = port
        self.log = log
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                self.args,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            if log:
                out.close()  # type: ignore[union-attr]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def wait_ready(self, timeout: float = 20.0) -> Proc:
        """Until it listens on its ``port``; if it does not, stop it and say why (its log's tail)."""
        if self.port is not None:
            try:
                wait_port(self.port, self.proc, self.name, timeout)
            except RuntimeError as exc:
                self.stop()
                raise RuntimeError(f"{exc}; log: {self.tail()}") from None
        return self

    def tail(self, n: int = 2000) -> str:
        if self.log and self.log.exists():
            return self.log.read_bytes()[-n:].decode(errors="replace")
        return ""

    def last_lines(self, n: int = 5) -> str:
        """The log's last ``n`` lines, indented: read before the log's folder may be deleted."""
        lines = self.tail(4000).splitlines()[-n:]
        return "".join(f"\n    {line}" for line in lines)

    def signal(self, sig: int) -> None:
        """To the whole group: the process and whatever it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, up to ``timeout`` s to finish, then SIGKILL to whatever is left in the group."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


def describe_exit(code: int) -> str:
    """``status 1``; ``status -9 (SIGKILL)`` for a process a signal ended."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"status {code} ({signal.Signals(-code).name})"
    return f"status {code}"


@dataclass(frozen=True)
class Restart:
    """When a process that ended on its own is started again, as systemd's
    ``Restart=on-failure``: after a failure (a non-zero status or a signal; a clean exit is
    meant, so it is not restarted), ``delay`` seconds later, doubling with each restart still
    within ``interval`` up to ``max_delay`` (RestartSec with steps). A process that needs a
    ``burst``-th restart within ``interval`` seconds gives up (StartLimitBurst and
    StartLimitIntervalSec): one that dies at once every time would otherwise loop forever."""

    delay: float = 0.5
    max_delay: float = 8.0
    burst: int = 5
    interval: float = 60.0


@dataclass
class _Spec:
    """How a process was started, to start it again the same way."""

    args: list[str]
    port: int | None
    env: dict[str, str] | None
    cwd: str | Path | None
    restart: Restart | None
    restarts: list[float] = field(default_factory=list)  # monotonic times, within the interval
    due: float | None = None  # when the pending restart happens


class Procs:
    """Named processes started together and stopped together (newest first), each logging
    to ``<dir>/<name>.log``. Safe to stop from a signal handler or a watchdog thread.
    ``supervise``, called now and then, restarts those spawned with a ``Restart`` policy."""

    def __init__(self, directory: Path):
        self.dir = directory
        self._procs: list[Proc] = []
        self._specs: dict[str, _Spec] = {}
        self._lock = threading.Lock()
        self._stopped = False

    def spawn(
        self,
        name: str,
        args: Sequence[str],
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        timeout: float = 30,
        restart: Restart | None = None,
    ) -> Proc:
        """Start ``name``; with ``port``, return once it listens there (RuntimeError with its
        log's tail if it exits or does not listen within ``timeout``). With ``restart``,
        ``supervise`` starts it again when it fails."""
        p = Proc(args, name=name, port=port, env=env, log=self.dir / f"{name}.log", cwd=cwd)
        with self._lock:
            self._stopped = False
            self._procs.append(p)
            self._specs[name] = _Spec(list(args), port, env, cwd, restart)
        if port is not None:
            p.wait_ready(timeout)
        return p

    def __iter__(self) -> Any:
        with self._lock:
            return iter(list(self._procs))

    def get(self, name: str) -> Proc:
        return next(p for p in self if p.name == name)

    def exited(self) -> Proc | None:
        """The first process that has ended, if any."""
        return next((p for p in self if p.returncode is not None), None)

    def supervise(self, say: Callable[[str], None]) -> str | None:
        """One round of supervision: each process that has ended is restarted by its policy
        (``say`` tells of each exit and restart), or, when it has none, exited cleanly or hit
        its start limit, the reason it cannot go on is returned (with its log's last lines,
        read now: the caller may be about to delete the log's folder). Never blocks: a
        restart waits for its delay over later calls, and a restarted server is not waited
        for (if it cannot start it ends again, and that counts)."""
        now = time.monotonic()
        for p in self:
            code = p.returncode
            spec = self._specs.get(p.name)
            if code is None or spec is None:
                continue
            ended = f"{p.name} exited with {describe_exit(code)}"
            policy = spec.restart
            if policy is None or code == 0:
                return f"{ended}; last lines of {p.log}:{p.last_lines()}"
            if spec.due is None:
                spec.restarts = [t for t in spec.restarts if now - t < policy.interval]
                if len(spec.restarts) >= policy.burst:
                    return (
                        f"{ended} after {len(spec.restarts)} restarts within {policy.interval:g} s; "
                        f"not restarting it again; last lines of {p.log}:{p.last_lines()}"
                    )
                delay = min(policy.delay * 2 ** len(spec.restarts), policy.max_delay)
                spec.due = now + delay
                say(f"{ended}; restarting it in {delay:g} s")
            elif now >= spec.due:
                with self._lock:
                    if self._stopped:  # stop() ran meanwhile (a signal handler): start nothing
                        return None
                    new = Proc(spec.args, name=p.name, port=spec.port, env=spec.env, log=p.log, cwd=spec.cwd)
                    self._procs[self._procs.index(p)] = new
                spec.due = None
                spec.restarts.append(now)
                say(f"{p.name} restarted (pid {new.pid}; restart {len(spec.restarts)} of at most "
                    f"{policy.burst} within {policy.interval:g} s)")  # fmt: skip
        return None

    def remove(self, name: str) -> None:
        """Stop ``name`` and forget it."""
        with self._lock:
            found = [p for p in self._procs if p.name == name]
            self._procs = [p for p in self._procs if p.name != name]
            self._specs.pop(name, None)
        for p in found:
            p.stop(5)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to every group at once, then each gets what is left of ``timeout``."""
        with self._lock:
            procs, self._procs = list(reversed(self._procs)), []
            self._stopped = True
        for p in procs:
            if p.returncode is None:
                p.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in procs:
            p.stop(max(0.1, deadline - time.monotonic()))
