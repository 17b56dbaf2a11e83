"""`superfed demo` stops everything it started on SIGTERM and on Ctrl-C (SIGINT), and restarts
a process of its own that dies."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.e2e.conftest import Broker, start_demo
from tests.support.servers import wait_until

pytestmark = pytest.mark.slow


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(d.name))
            except OSError:
                continue
    return pids


def _secrets_kept(tmp: Path, redis_url: str) -> None:
    """Issue 11: the --info file is 0600; the demo's Redis wants its ACL user's password, which
    is on no command line and in no log."""
    import stat

    from broker.store.redis_auth import open_to_anyone

    assert stat.S_IMODE((tmp / "info.json").stat().st_mode) == 0o600
    password = urlparse(redis_url).password
    assert password and open_to_anyone(redis_url) is False
    assert not _processes_mentioning(password)
    for log in [tmp / "demo.log", *(tmp / "demo").glob("*.log")]:
        assert password not in log.read_text(errors="replace"), log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_demo_leaves_nothing_running(tmp_path: Path, sig: signal.Signals) -> None:
    b = start_demo(tmp_path)
    _secrets_kept(tmp_path, b.info["redis"])
    ports = [urlparse(u).port for u in [b.api, b.info["redis"], *b.info["simulators"].values()]]
    assert all(p and _listening(p) for p in ports)
    workdir = str(b.workdir)
    assert len(_processes_mentioning(workdir)) >= 6  # API, two workers, three simulators (and redis)
    os.kill(b.proc.pid, sig)  # to the demo alone, as a service manager would
    b.proc.proc.wait(30)
    wait_until(
        lambda: not any(_listening(p) for p in ports if p) and not _processes_mentioning(workdir),
        timeout=10, interval=0.2, what="every port closed and every process gone",
        last=lambda: f"listening {[p for p in ports if p and _listening(p)]}, {_processes_mentioning(workdir)}",
    )  # fmt: skip
    assert b.proc.proc.returncode == 0


def test_demo_with_the_embedded_redis(tmp_path: Path) -> None:
    """Without redis-server the demo runs on an embedded one that the workers reach over TCP."""
    import httpx

    b = start_demo(tmp_path, extra=("--embedded-redis",))
    try:
        assert "embedded" in (b.proc.tail(4000))
        with b.client() as c:
            r = c.post(
                "/api/v1/jobs",
                json={
                    "project": "m0001",
                    "spec": {
                        "executable": "/bin/true",
                        "attributes": {"duration": 60},
                    },
                },
            )
            assert r.status_code == 202, r.text
        job = b.wait_jobs([r.json()["id"]], {"COMPLETED", "FAILED"}, timeout=60)[r.json()["id"]]
        assert job["state"] == "COMPLETED", job
        assert httpx.get(f"{b.api}/readyz", timeout=5).status_code == 200
        # Ctrl-C ends it even while a client waits in a blocking command forever (the
        # embedded server used to wait for that client's thread): no kill needed
        redis_port = urlparse(b.info["redis"]).port
        with socket.create_connection(("127.0.0.1", redis_port or 0), timeout=5) as blocked:
            blocked.sendall(b"*3\r\n$5\r\nBLPOP\r\n$7\r\nnothing\r\n$1\r\n0\r\n")
            os.kill(b.proc.pid, signal.SIGINT)
            assert b.proc.proc.wait(60) == 0
    finally:
        b.proc.stop()


def _submit(b: Broker, n: int) -> list[str]:
    with b.client() as c:
        ids = []
        for _ in range(n):
            r = c.post("/api/v1/jobs", json={"project": "m0001",
                                             "spec": {"executable": "/bin/true", "attributes": {"duration": 60}}})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
    return ids


def test_a_killed_worker_is_restarted_and_jobs_carry_on(tmp_path: Path) -> None:
    b = start_demo(tmp_path)
    try:
        worker_1 = f"{b.workdir}/superfed.toml --name demo-worker-1-"
        [pid] = _processes_mentioning(worker_1)
        before = _submit(b, 3)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: "superfed demo: worker-1 restarted (pid" in b.proc.tail(4000), timeout=30,
                   what="the restart said", last=lambda: b.proc.tail(400))  # fmt: skip
        assert "worker-1 exited with status -9 (SIGKILL); restarting it in 0.5 s" in b.proc.tail(4000)
        assert b.proc.returncode is None  # the demo stays up
        [new_pid] = _processes_mentioning(worker_1)
        assert new_pid != pid
        after = _submit(b, 3)
        jobs = b.wait_jobs(before + after, {"COMPLETED", "FAILED", "CANCELLED"}, timeout=120)
        assert {j["state"] for j in jobs.values()} == {"COMPLETED"}, jobs
        assert b.proc.returncode is None
    finally:
        b.proc.stop()
