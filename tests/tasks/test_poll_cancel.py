"""Status polls and cancels: a poll moves jobs forward to their end and takes finished jobs out
of the site's active set; a job missing from the facility's answer is not complete; a final
state stays final; a cancel reaches the facility and the poll confirms it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import pytest

from tests.tasks.conftest import LONG, SPEC, Tasks

FINAL = {"COMPLETED", "FAILED", "CANCELED"}


def test_a_poll_follows_a_job_to_completion_and_off_the_active_set(healthy: Tasks) -> None:
    t = healthy
    jid = t.create()
    t.submit(jid)
    assert t.poll("beta") == "nothing to poll"
    h = t.poll_until(jid, FINAL, "alpha")
    assert h["state"] == "COMPLETED" and h["exit_code"] == "0"
    assert t.active("alpha") == {} and t.assigned("alpha") == set()  # a site with no unfinished jobs
    assert t.r.zscore(t.keys.done("alpha"), jid) is not None  # counted in its throughput
    assert jid in t.in_state("COMPLETED") and jid not in t.in_state("QUEUED") | t.in_state("ACTIVE")
    states = [e["state"] for e in h["history"]]
    assert states[0] == "NEW" and states[-1] == "COMPLETED" and states == sorted(states, key=ORDER.index)
    assert t.poll("alpha") == "nothing to poll"


ORDER = ["NEW", "QUEUED", "HELD", "ACTIVE", "COMPLETED", "FAILED", "CANCELED"]


def test_a_failing_job_fails_with_its_exit_code(healthy: Tasks) -> None:
    t = healthy
    jid = t.create({**SPEC, "arguments": ["-c", "exit 3"]})
    t.submit(jid)
    h = t.poll_until(jid, FINAL, "alpha")
    assert (h["state"], h["exit_code"]) == ("FAILED", "3")
    assert t.active("alpha") == {}


def test_a_running_job_reads_active(healthy: Tasks) -> None:
    t = healthy
    jid = t.create(LONG)
    t.submit(jid)
    h = t.poll_until(jid, {"ACTIVE", *FINAL}, "alpha")
    assert h["state"] == "ACTIVE" and jid in t.active("alpha")


def test_absence_from_the_facilitys_answer_is_not_completion(healthy: Tasks) -> None:
    t = healthy
    jid = t.create(LONG)
    t.submit(jid)
    t.poll_until(jid, {"ACTIVE"}, "alpha")
    t.sim["alpha"].control("reset")  # the facility's answer no longer lists the job
    for _ in range(3):
        assert t.poll("alpha") == "1 polled, 0 moved"
    h = t.job(jid)
    assert h["state"] == "ACTIVE" and "exit_code" not in h
    assert jid in t.active("alpha")  # still asked about at the next poll


def test_a_final_state_is_final(healthy: Tasks) -> None:
    t = healthy
    jid = t.create()
    t.submit(jid)
    done = t.poll_until(jid, FINAL, "alpha")
    assert done["state"] == "COMPLETED"
    for late in ("ACTIVE", "FAILED", "CANCELED", "QUEUED"):
        assert t.advance(jid, late, exit_code=9, message="a late answer") == 0
    h = t.job(jid)
    assert h["state"] == "COMPLETED" and h["exit_code"] == "0" and h["message"] == done["message"]
    assert h["history"] == done["history"] and h["attempts"] == done["attempts"]
    assert t.in_state("COMPLETED") == {jid} and not t.in_state("FAILED") | t.in_state("CANCELED")


def test_states_never_move_backward(healthy: Tasks) -> None:
    t = healthy
    jid = t.create(LONG)
    t.submit(jid)
    t.poll_until(jid, {"ACTIVE"}, "alpha")
    assert t.advance(jid, "NEW") == 0
    assert t.job(jid)["state"] == "ACTIVE" and t.in_state("ACTIVE") == {jid} and not t.in_state("NEW")
    queued = t.create(LONG)
    t.submit(queued)
    assert t.advance(queued, "NEW") == 0 and t.job(queued)["state"] == "QUEUED"
    assert t.advance(queued, "ACTIVE") == 1 and t.job(queued)["state"] == "ACTIVE"


def test_a_cancel_reaches_the_facility_and_the_poll_confirms_it(healthy: Tasks) -> None:
    t = healthy
    jid = t.create(LONG)
    t.submit(jid)
    t.poll_until(jid, {"ACTIVE"}, "alpha")
    assert t.cancel(jid) == "cancel sent"
    (at_facility,) = t.sim["alpha"].jobs_tagged(jid)
    assert at_facility["state"] == "CANCELLED"
    h = t.job(jid)  # the cancel polls the site itself: confirmed at once
    assert h["state"] == "CANCELED" and t.active("alpha") == {} and t.assigned("alpha") == set()
    assert t.cancel(jid) == "already CANCELED"
    assert t.cancel("j-no-such-job") == "no such job"


def test_a_cancel_of_a_job_recorded_without_its_system_goes_to_the_sites_first(healthy: Tasks) -> None:
    t = healthy
    jid = t.create(LONG)
    t.submit(jid)
    t.r.hdel(t.keys.job(jid), "system")  # as a broker before systems were recorded wrote it
    assert t.cancel(jid) == "cancel sent"
    assert [j["state"] for j in t.sim["alpha"].jobs_tagged(jid)] == ["CANCELLED"]


def test_a_cancel_the_facility_refuses_is_said_on_the_job(healthy: Tasks) -> None:
    t = healthy
    jid = t.create(LONG)
    t.submit(jid)
    t.sim["alpha"].control("chaos", {"error_rate": 1.0, "status": 400})
    assert t.cancel(jid) == "refused"
    t.sim["alpha"].control("chaos", {})
    h = t.job(jid)
    assert h["state"] == "QUEUED" and h["message"].startswith("cancel refused by alpha: ")
    assert [j["state"] for j in t.sim["alpha"].jobs_tagged(jid)] != ["CANCELLED"]


def test_a_cancel_of_a_job_whose_site_was_removed_ends_it(healthy: Tasks) -> None:
    t = healthy
    jid = t.create(LONG)
    t.submit(jid)
    t.call(t.rt.sites.delete, "alpha")
    assert t.cancel(jid) == "canceled (site gone)"
    h = t.job(jid)
    assert h["state"] == "CANCELED" and h["message"] == "site alpha was removed"


def test_a_cancel_asked_while_the_submission_lands_is_carried_out(healthy: Tasks) -> None:
    t = healthy
    jid = t.create(LONG)
    t.mark_inflight(jid, "alpha", age=3600)
    assert t.cancel(jid) == "submission in flight; the submitter cancels it when it lands"
    assert t.job(jid)["state"] == "NEW"
    # the API set the flag meanwhile; alpha holds no job of it (the try is given up): the cancel
    # is carried out at once, and the job is placed nowhere
    t.request_cancel(jid)
    assert t.submit(jid) == "canceled"
    assert t.sim["alpha"].jobs() == [] and t.sim["beta"].jobs() == [] and t.job(jid)["state"] == "CANCELED"
    # a cancel asked for while the request is at the facility: canceled there the moment it lands
    jid2 = t.create(LONG, site="alpha")
    t.sim["alpha"].slow.mode = "made"
    t.sim["alpha"].slow.on_submit = lambda: t.request_cancel(jid2)
    assert "submitted to alpha" in t.submit(jid2)
    (at_facility,) = t.sim["alpha"].jobs_tagged(jid2)
    assert at_facility["state"] == "CANCELLED"
    assert t.poll_until(jid2, FINAL, "alpha")["state"] == "CANCELED"


def test_a_cancel_before_submission_touches_no_facility(healthy: Tasks) -> None:
    t = healthy
    jid = t.create(LONG)
    assert t.cancel(jid) == "canceled"
    h = t.job(jid)
    assert h["state"] == "CANCELED" and h["history"][-1]["detail"] == "canceled before it reached a facility"
    assert t.sim["alpha"].jobs() == [] and t.sim["beta"].jobs() == []
    assert t.submit(jid) == "already CANCELED"  # the queued submission finds it final
    assert t.sim["alpha"].jobs() == []


def test_a_cancel_of_a_job_the_facility_forgot_ends_it(healthy: Tasks) -> None:
    t = healthy
    jid = t.create(LONG)
    t.submit(jid)
    t.sim["alpha"].control("reset")
    assert t.cancel(jid) == "canceled (unknown at facility)"
    h = t.job(jid)
    assert h["state"] == "CANCELED" and h["message"] == "the facility no longer knows the job"
    assert t.active("alpha") == {}


def test_a_failed_poll_changes_nothing_and_says_where(healthy: Tasks, caplog: pytest.LogCaptureFixture) -> None:
    t = healthy
    jid = t.create(LONG)
    t.submit(jid)
    t.sim["alpha"].control("chaos", {"error_rate": 1.0, "status": 503})
    with caplog.at_level(logging.WARNING, logger="superfed.poll"):
        assert t.poll("alpha") == "1 polled, 0 moved"
    assert t.job(jid)["state"] == "QUEUED" and jid in t.active("alpha")
    (warning,) = [r for r in caplog.records if r.name == "superfed.poll"]
    assert warning.getMessage().startswith("poll alpha/polaris failed: ") and "503" in warning.getMessage()



def _exits_3(t: Tasks) -> str:
    jid = t.create({**SPEC, "arguments": ["-c", "exit 3"]})
    assert "submitted to alpha" in t.submit(jid)
    return jid


def test_a_job_that_fails_at_once_counts_against_its_site(healthy: Tasks) -> None:
    """The black-hole guard: a job failing within seconds of its acceptance at a site is
    recorded as a bad outcome there, once, beside the submission's good one."""
    t = healthy
    jid = _exits_3(t)
    assert t.poll_until(jid, FINAL, "alpha")["exit_code"] == "3"
    t.poll("alpha")  # a second look at a final job records nothing more
    kinds = [o.split(":")[0] for o in t.r.lrange(t.keys.outcomes("alpha"), 0, -1)]
    assert kinds == ["bad", "ok"]  # newest first


def test_a_job_that_fails_long_after_its_acceptance_says_nothing_of_the_site(healthy: Tasks) -> None:
    t = healthy
    jid = _exits_3(t)
    tries = msgspec.json.decode(t.r.hget(t.keys.job(jid), "attempts"))
    tries[-1]["at"] = datetime.fromtimestamp(time.time() - 3600, UTC).isoformat()  # accepted an hour ago
    t.r.hset(t.keys.job(jid), "attempts", msgspec.json.encode(tries))
    t.poll_until(jid, FINAL, "alpha")
    assert [o.split(":")[0] for o in t.r.lrange(t.keys.outcomes("alpha"), 0, -1)] == ["ok"]


def test_the_guard_keeps_as_many_outcomes_as_configured(make_tasks: Callable[..., Tasks]) -> None:
    """``[placement] demote_last``: the window of outcomes the black-hole guard reads, kept
    for the quick failure as for the submission."""
    t = make_tasks(demote_last=1)
    for name in t.sim:
        assert t.check(name) == "up"
    jid = _exits_3(t)
    t.poll_until(jid, FINAL, "alpha")
    assert [o.split(":")[0] for o in t.r.lrange(t.keys.outcomes("alpha"), 0, -1)] == ["bad"]


def test_a_quick_failure_counts_only_against_the_site_of_the_last_try(healthy: Tasks) -> None:
    """The try the job's record last names is the one that was accepted: a job whose record
    says it was last tried elsewhere says nothing of this site."""
    t = healthy
    jid = _exits_3(t)
    tries = msgspec.json.decode(t.r.hget(t.keys.job(jid), "attempts"))
    tries.append({**tries[-1], "site": "beta"})
    t.r.hset(t.keys.job(jid), "attempts", msgspec.json.encode(tries))
    t.poll_until(jid, FINAL, "alpha")
    assert [o.split(":")[0] for o in t.r.lrange(t.keys.outcomes("alpha"), 0, -1)] == ["ok"]


def test_a_sites_backlog_and_throughput_follow_its_jobs(healthy: Tasks) -> None:
    """What placement reads of a site (snapshot.site_views): the jobs it holds for the broker,
    and the jobs it finished per minute over the last five minutes."""
    t = healthy
    jobs = t.rt.jobs
    long = t.create(LONG, site="alpha")
    short = t.create(site="alpha")
    t.submit(long)
    t.submit(short)
    assert t.call(jobs.backlogs, ["alpha", "beta"]) == {"alpha": 2, "beta": 0}
    t.poll_until(short, FINAL, "alpha")
    assert t.call(jobs.backlogs, ["alpha", "beta"]) == {"alpha": 1, "beta": 0}
    assert t.call(jobs.throughputs, ["alpha", "beta"]) == {"alpha": 1 * 60 / 300, "beta": 0.0}
    assert t.call(jobs.throughputs, ["alpha"], 60.0) == {"alpha": 1.0}
    t.r.zadd(t.keys.done("alpha"), {"finished-long-ago": time.time() - 301})  # out of the window
    assert t.call(jobs.throughputs, ["alpha"]) == {"alpha": 0.2}
    assert t.r.zscore(t.keys.done("alpha"), "finished-long-ago") is None  # and forgotten
