"""Issue 5's drills: processes killed on purpose, then the broker's jobs against the facilities'."""

from __future__ import annotations

import signal
import time

import pytest

from tests.drills.conftest import Cluster, kill

pytestmark = [pytest.mark.drill, pytest.mark.slow]


def _submitting(c: Cluster, timeout: float = 30) -> tuple[int, str]:
    """(index in c.workers, broker job id) of a worker caught with a submission in flight."""
    r = c.r()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, _p in enumerate(c.workers):
            current = r.hget(f"rq:worker:drill-w{i + 1}", "current_job") or ""
            if current.startswith("submit-"):
                jid = current.removeprefix("submit-")
                if r.hget(f"superfed:job:{jid}", "inflight"):
                    return i, jid
        time.sleep(0.02)
    raise AssertionError("no worker was caught mid-submission")


def test_worker_sigkill_mid_submission(cluster: Cluster) -> None:
    """1. A worker SIGKILLed while a submission is on the wire at a slow facility: every job
    still reaches exactly one facility job, within 60 s of the kill."""
    c = cluster
    c.chaos(("iri",), latency_ms=1500)  # ALCF is slow, and every job goes there
    accepted = c.post(10, "sleep 1", "d1", site="alcf")
    i, jid = _submitting(c)
    kill(c.workers[i])
    killed_at = time.monotonic()
    c.start_worker()  # what a supervisor (systemd, Kubernetes) does
    placed = c.wait_jobs([jid], {"QUEUED", "ACTIVE", "COMPLETED"}, timeout=60)
    all_placed = c.wait_jobs(set(accepted.values()), {"QUEUED", "ACTIVE", "COMPLETED"}, timeout=60)
    c.chaos()
    done = c.wait_jobs(set(accepted.values()), timeout=60)
    a = c.audit("worker-sigkill", accepted)
    outcomes = [x["outcome"] for x in a.jobs[jid]["attempts"]]
    a.report(**{"killed job placed after": placed - killed_at, "all placed after": all_placed - killed_at,
                "all finished after": done - killed_at})
    a.check()
    assert all_placed - killed_at < 60
    assert outcomes[-1] in ("settled", "submitted"), outcomes


def test_worker_sigterm_finishes_its_job(cluster: Cluster) -> None:
    """8a. SIGTERM to a worker mid-submission: it finishes that job, then exits cleanly."""
    c = cluster
    c.chaos(("iri",), latency_ms=1500)
    accepted = c.post(6, "sleep 1", "d8w", site="alcf")
    i, jid = _submitting(c)
    c.workers[i].signal(signal.SIGTERM)
    t0 = time.monotonic()
    rc = c.workers[i].proc.wait(30)
    exited = time.monotonic() - t0
    job = c.all_jobs()[jid]
    assert rc == 0, c.workers[i].tail()
    assert job["state"] != "NEW" and job["attempts"][-1]["outcome"] == "submitted", job["attempts"]
    left = [m for m in c.r().zrange("rq:wip:superfed-submit", 0, -1) if m.startswith(f"submit-{jid}:")]
    assert not left, "the job was left in RQ's started registry (abandoned, not finished)"
    c.chaos()
    done = c.wait_jobs(set(accepted.values()), timeout=60)
    a = c.audit("worker-sigterm", accepted)
    a.report(**{"worker exited after": exited, "all finished after": done - t0})
    a.check()
