"""Late copies (issue 15): a facility that makes a job after the broker gave up its try there
and placed the job elsewhere. The copy is canceled at the next poll of that site and recorded
on the job, whatever the job's state; the job's own copy, and a watch that has run out, are
left alone."""

from __future__ import annotations

import time
from typing import Any

import pytest

from broker.tasks import submit
from broker.tasks.submit import TryLater
from tests.tasks.conftest import LONG, Tasks


def _late_job_made_at_alpha(t: Tasks, **placement: Any) -> str:
    """A job whose submission to alpha times out and is held there; the job is not made yet."""
    t.sim["alpha"].slow.mode = "late"
    jid = t.create(LONG, **placement)
    with pytest.raises(TryLater, match="outcome is unknown"):
        t.submit(jid)
    assert t.sim["alpha"].jobs() == [] and t.inflight(jid) == "alpha"
    return jid


def _release(t: Tasks, jid: str) -> dict[str, Any]:
    """Let alpha's held request through: alpha makes the job now, long after the client left."""
    t.sim["alpha"].slow.release.set()
    deadline = time.monotonic() + 30
    while not (made := t.sim["alpha"].jobs_tagged(jid)):
        assert time.monotonic() < deadline, "alpha never made the held job"
        time.sleep(0.02)
    (copy,) = made
    return copy


def test_a_late_copy_is_canceled_at_the_next_poll_and_recorded(healthy: Tasks) -> None:
    t = healthy
    jid = _late_job_made_at_alpha(t)
    t.age_inflight(jid, 60)  # its timeouts have long passed, and alpha holds no job of ours
    assert "submitted to beta" in t.submit(jid)
    copy = _release(t, jid)
    assert "1 late copies canceled" in t.poll("alpha")
    (at_alpha,) = t.sim["alpha"].jobs_tagged(jid)
    assert at_alpha["id"] == copy["id"] and at_alpha["state"] == "CANCELLED"
    h = t.job(jid)
    assert h["state"] == "QUEUED" and h["site"] == "beta"  # the job itself carries on at beta
    last = h["attempts"][-1]
    assert (last["site"], last["outcome"], last["native_id"].split(".")[0]) == ("alpha", "canceled-copy", copy["id"])
    assert "given up" in last["error"]
    assert [j["state"] for j in t.sim["beta"].jobs_tagged(jid)] != ["CANCELLED"]
    assert t.watched("alpha") == set()
    assert t.r.hget(t.keys.metrics("attempts"), "alpha\tcanceled-copy") == "1"
    # nothing more to do: a second poll cancels nothing and records nothing
    assert "late copies" not in t.poll("alpha")
    assert len(t.job(jid)["attempts"]) == len(h["attempts"])


def test_no_copy_yet_keeps_the_watch(healthy: Tasks) -> None:
    t = healthy
    jid = _late_job_made_at_alpha(t)
    t.age_inflight(jid, 60)
    t.submit(jid)
    assert "late copies" not in t.poll("alpha")
    assert t.watched("alpha") == {jid}  # still watched: alpha may make it yet
    _release(t, jid)
    assert "1 late copies canceled" in t.poll("alpha")


def test_a_job_that_failed_has_its_late_copy_canceled_too(healthy: Tasks) -> None:
    """Pinned to alpha, its retries ran out while alpha held the request: FAILED, then alpha
    makes the job. The copy must not run: canceled and recorded on the failed job."""
    t = healthy
    jid = _late_job_made_at_alpha(t, site="alpha")
    t.call(submit.give_up, t.rt, jid, TryLater("out of retries"))
    assert t.job(jid)["state"] == "FAILED" and t.watched("alpha") == {jid}
    copy = _release(t, jid)
    assert "1 late copies canceled" in t.poll("alpha")
    assert [j["state"] for j in t.sim["alpha"].jobs_tagged(jid)] == ["CANCELLED"]
    h = t.job(jid)
    assert h["state"] == "FAILED"
    assert (h["attempts"][-1]["outcome"], h["attempts"][-1]["native_id"].split(".")[0]) == ("canceled-copy", copy["id"])


def test_the_jobs_own_copy_is_left_alone(healthy: Tasks) -> None:
    """A watched site where the job did settle (a Redis restart's settling found it there):
    that copy is the job's, and is not canceled."""
    t = healthy
    jid = t.create(LONG, site="alpha")
    assert "submitted to alpha" in t.submit(jid)
    t.call(t.rt.late.watch, "alpha", jid, "polaris")
    assert "late copies" not in t.poll("alpha")
    assert [j["state"] for j in t.sim["alpha"].jobs_tagged(jid)] != ["CANCELLED"]
    assert t.job(jid)["state"] in ("QUEUED", "ACTIVE") and t.watched("alpha") == set()
    assert [a["outcome"] for a in t.job(jid)["attempts"]] == ["submitted"]


def test_a_watch_that_ran_out_is_dropped_unasked(healthy: Tasks) -> None:
    t = healthy
    jid = _late_job_made_at_alpha(t)
    t.age_inflight(jid, 60)
    t.submit(jid)
    _release(t, jid)
    t.call(t.rt.late.watch, "alpha", jid, "polaris", time.time() - 7200)  # given up two hours ago
    assert "late copies" not in t.poll("alpha")
    assert t.watched("alpha") == set()
    assert [j["state"] for j in t.sim["alpha"].jobs_tagged(jid)] != ["CANCELLED"]  # past watching
