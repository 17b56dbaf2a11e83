"""Process supervision (broker/procs.py), shared by the demo, the benchmarks and the tests:
real processes, their process groups, and the one bounded wait."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

from broker.procs import Proc, Procs, Restart, free_port, listening, wait_until

PY = sys.executable


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = itertools.count()
    assert wait_until(lambda: next(calls) >= 3 and "ok", timeout=5, interval=0) == "ok"


def test_wait_until_says_what_did_not_happen_and_what_was_seen() -> None:
    with pytest.raises(TimeoutError, match=r"the moon rising did not happen within 0.05 s \(last: clouds\)"):
        wait_until(lambda: None, timeout=0.05, interval=0.01, what="the moon rising", last=lambda: "clouds")


def test_wait_until_lets_the_condition_fail_loudly() -> None:
    def broken() -> bool:
        raise RuntimeError("the process died")

    with pytest.raises(RuntimeError, match="the process died"):
        wait_until(broken, timeout=5)


def test_a_stopped_process_takes_its_children_with_it(tmp_path: Path) -> None:
    port = free_port()
    child_pid = tmp_path / "child.pid"
    # a shell that forks a long sleep, then becomes a server: the sleep is in its process group
    script = f"sleep 300 & echo $! > {child_pid}; exec {PY} -m http.server {port} --bind 127.0.0.1"
    p = Proc(["sh", "-c", script], name="server", port=port, log=tmp_path / "server.log").wait_ready(20)
    assert listening(port) and p.returncode is None
    child = int(wait_until(lambda: child_pid.exists() and child_pid.read_text().strip(), timeout=10))
    assert _alive(child)
    p.stop(timeout=5)
    assert p.returncode is not None and not listening(port)
    wait_until(lambda: not _alive(child), timeout=5, what="the forked sleep gone")


def test_a_process_that_exits_before_listening_is_reported_with_its_log(tmp_path: Path) -> None:
    p = Proc([PY, "-c", "import sys; print('cannot start: no config'); sys.exit(4)"],
             name="api", port=free_port(), log=tmp_path / "api.log")  # fmt: skip
    with pytest.raises(RuntimeError, match=r"api exited with status 4; log: cannot start: no config"):
        p.wait_ready(20)


def test_procs_are_stopped_together_and_an_exit_is_noticed(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    sleeper = procs.spawn("sleeper", ["sleep", "300"])
    quitter = procs.spawn("quitter", [PY, "-c", "print('bye')"])
    assert wait_until(procs.exited, timeout=10) is quitter
    assert procs.get("sleeper") is sleeper and (tmp_path / "quitter.log").read_text() == "bye\n"
    procs.stop(timeout=5)
    assert sleeper.returncode is not None and list(procs) == []


def test_a_failed_process_is_restarted_and_says_so(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    first = procs.spawn("worker", ["sleep", "300"], restart=Restart(delay=0.01))
    said: list[str] = []
    first.kill()  # as `kill -9` would
    restarted = wait_until(lambda: procs.supervise(said.append) is None and procs.get("worker") is not first
                           and procs.get("worker"), timeout=10, what="worker restarted")  # fmt: skip
    try:
        assert restarted.returncode is None and restarted.pid != first.pid
        assert said[0] == "worker exited with status -9 (SIGKILL); restarting it in 0.01 s"
        assert said[1].startswith(f"worker restarted (pid {restarted.pid}; restart 1 of at most 5 within 60 s)")
    finally:
        procs.stop(timeout=5)
    assert restarted.returncode is not None


def test_a_process_that_fails_at_once_every_time_stops_at_the_start_limit(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    procs.spawn("api", [PY, "-c", "import sys; print('port 1 taken'); sys.exit(3)"],
                restart=Restart(delay=0.01, max_delay=0.04, burst=3))  # fmt: skip
    said: list[str] = []
    reason = wait_until(lambda: procs.supervise(said.append), timeout=30, what="giving up")
    restarts = [s for s in said if s.startswith("api restarted")]
    assert len(restarts) == 3 and restarts[-1].startswith("api restarted (pid")
    # the delay doubles from one restart to the next, up to max_delay
    assert [s.rpartition(" in ")[2] for s in said if "restarting" in s] == ["0.01 s", "0.02 s", "0.04 s"]
    assert reason.startswith("api exited with status 3 after 3 restarts within 60 s; not restarting it again")
    # its log (each start appends to it), read before anyone deletes it
    assert reason.endswith("api.log:" + "\n    port 1 taken" * 4)
    procs.stop(timeout=5)


def test_a_clean_exit_or_no_policy_is_not_restarted(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    done = procs.spawn("done", [PY, "-c", "print('bye')"], restart=Restart(delay=0.01))
    said: list[str] = []
    assert wait_until(lambda: procs.supervise(said.append), timeout=10).startswith("done exited with status 0;")
    assert said == [] and procs.get("done") is done
    procs.stop(timeout=5)
    procs.spawn("redis", [PY, "-c", "import sys; sys.exit(1)"])
    assert wait_until(lambda: procs.supervise(said.append), timeout=10).startswith("redis exited with status 1;")
    assert said == []
    procs.stop(timeout=5)
