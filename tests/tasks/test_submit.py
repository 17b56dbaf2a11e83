"""Submission: placed and submitted, refused by the facility, retried elsewhere, a timeout
settled by asking the facility for the tag (found: no second job; not found: held, then placed
again once the request cannot be pending), a cancel before placement, no eligible site."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from broker.tasks import submit
from broker.tasks.submit import TryLater
from tests.tasks.conftest import LONG, SPEC, Tasks


def test_placed_and_submitted(healthy: Tasks) -> None:
    t = healthy
    jid = t.create()
    assert "submitted to alpha" in t.submit(jid)
    h = t.job(jid)
    assert h["state"] == "QUEUED" and h["site"] == "alpha" and h["system"] == "polaris"
    (native,) = [j["id"] for j in t.sim["alpha"].jobs_tagged(jid)]
    assert h["native_id"].split(".")[0] == native and t.inflight(jid) is None  # PBS's long id
    assert t.sim["beta"].jobs() == []
    assert [a["outcome"] for a in h["attempts"]] == ["submitted"]
    # the placement it was made on, with every site and why
    assert h["placement"]["site"] == "alpha" and {r["site"] for r in h["placement"]["ranking"]} == {"alpha", "beta"}
    assert t.active("alpha") == {jid: h["native_id"]}
    assert t.assigned("alpha") == {jid}  # counts in alpha's backlog until it ends
    assert jid in t.in_state("QUEUED") and jid not in t.in_state("NEW")
    assert [e["state"] for e in h["history"]] == ["NEW", "QUEUED"]
    # a second run (RQ retries, a sweeper) changes nothing and makes no second job
    assert t.submit(jid) == "already QUEUED"
    assert len(t.sim["alpha"].jobs()) == 1


def test_the_project_is_charged_through_the_sites_account(healthy: Tasks) -> None:
    jid = healthy.create(project="m0001")
    healthy.submit(jid)
    (job,) = healthy.sim["alpha"].jobs_tagged(jid)
    assert job["account"] == "m0001"


def test_refused_by_a_pinned_site_fails_with_its_message(healthy: Tasks) -> None:
    t = healthy
    jid = t.create({**SPEC, "attributes": {"duration": 600, "custom_attributes": {}}}, site="alpha")
    assert t.submit(jid) == "rejected by alpha"
    h = t.job(jid)
    assert h["state"] == "FAILED"
    assert "filesystems is required" in h["message"] and "alpha rejected the job" in h["message"]
    assert [(a["site"], a["outcome"]) for a in h["attempts"]] == [("alpha", "rejected")]
    assert t.sim["beta"].jobs() == []  # pinned: not tried elsewhere
    assert t.assigned("alpha") == set() and t.active("alpha") == {}
    assert jid in t.in_state("FAILED")


def test_a_refusal_fails_over_and_fails_only_when_every_site_refused(healthy: Tasks) -> None:
    """Issue 10: a site's own refusal sends an unpinned job to the next site at once; it
    fails only when every eligible site refused it, each refusal in its attempts."""
    t = healthy
    jid = t.create({**SPEC, "attributes": {"duration": 600, "custom_attributes": {}}})
    assert t.submit(jid) == "failed: every eligible site refused the job"
    h = t.job(jid)
    assert h["state"] == "FAILED" and "every eligible site refused the job" in h["message"]
    assert sorted((a["site"], a["outcome"]) for a in h["attempts"]) == [("alpha", "rejected"), ("beta", "rejected")]
    assert all("filesystems is required" in a["error"] for a in h["attempts"])
    assert t.sim["alpha"].jobs() == [] and t.sim["beta"].jobs() == []
    assert t.assigned("alpha") == set() and t.assigned("beta") == set()


def test_a_retriable_failure_fails_over_to_the_next_site(healthy: Tasks) -> None:
    """A 503 to the submission: the facility is asked for the tag (not there), then beta."""
    t = healthy
    t.sim["alpha"].slow.busy = True
    jid = t.create()
    assert "submitted to beta" in t.submit(jid)
    h = t.job(jid)
    assert h["state"] == "QUEUED" and h["site"] == "beta"
    assert [(a["site"], a["outcome"]) for a in h["attempts"]] == [("alpha", "retriable"), ("beta", "submitted")]
    assert t.assigned("alpha") == set() and t.assigned("beta") == {jid}
    assert len(t.sim["beta"].jobs_tagged(jid)) == 1


def test_every_site_failing_retriably_is_retried_later(healthy: Tasks) -> None:
    t = healthy
    for f in t.sim.values():
        f.slow.busy = True
    jid = t.create()
    with pytest.raises(TryLater, match="every eligible site failed"):
        t.submit(jid)
    h = t.job(jid)
    assert h["state"] == "NEW" and t.inflight(jid) is None
    assert [a["outcome"] for a in h["attempts"]] == ["retriable", "retriable"]
    assert "the scheduler is busy" in h["message"]  # what a user sees of the job while it waits
    assert t.assigned("alpha") == t.assigned("beta") == set()
    for f in t.sim.values():
        f.slow.busy = False
    assert "submitted to" in t.submit(jid)  # RQ's retry
    assert t.job(jid)["state"] == "QUEUED"


def test_a_timeout_whose_job_was_made_is_settled_by_its_tag(healthy: Tasks) -> None:
    t = healthy
    t.sim["alpha"].slow.mode = "made"
    jid = t.create()
    assert t.submit(jid) == "submitted to alpha (settled after a timeout)"
    assert t.sim["alpha"].slow.hits == 1
    h = t.job(jid)
    (made,) = t.sim["alpha"].jobs_tagged(jid)
    assert h["state"] == "QUEUED" and h["site"] == "alpha" and h["native_id"].split(".")[0] == made["id"]
    assert [a["outcome"] for a in h["attempts"]] == ["settled"]
    assert t.sim["beta"].jobs() == []  # never a second job elsewhere


def test_a_timeout_whose_job_was_not_made_is_held_then_placed_again(healthy: Tasks) -> None:
    t = healthy
    t.sim["alpha"].slow.mode = "lost"
    jid = t.create()
    with pytest.raises(TryLater, match="outcome is unknown"):
        t.submit(jid)
    h = t.job(jid)
    assert h["state"] == "NEW" and t.inflight(jid) == "alpha"  # still unsure: the mark stays
    assert [a["outcome"] for a in h["attempts"]] == ["uncertain"]
    assert t.sim["alpha"].jobs() == [] and t.sim["beta"].jobs() == []
    # at once again: the request may still be on its way, so nothing is sent anywhere
    with pytest.raises(TryLater, match="may still be under way"):
        t.submit(jid)
    assert t.sim["alpha"].jobs() == [] and t.sim["beta"].jobs() == []
    # once the request cannot be pending any more (its timeouts have passed), it is placed
    # again, but not at alpha: alpha may still make the job late, and is watched for that
    t.age_inflight(jid, 60)
    assert "submitted to beta" in t.submit(jid)
    assert t.sim["alpha"].jobs() == [] and len(t.sim["beta"].jobs_tagged(jid)) == 1
    h = t.job(jid)
    assert h["state"] == "QUEUED" and [(a["site"], a["outcome"]) for a in h["attempts"]] == [
        ("alpha", "uncertain"), ("alpha", "abandoned"), ("beta", "submitted")]
    assert t.assigned("alpha") == set() and t.watched("alpha") == {jid}


def test_a_job_given_up_at_every_site_is_tried_again_rather_than_failed(healthy: Tasks) -> None:
    """Giving up a try is not a refusal: with no other site left, one of them is tried again
    (its watch stays) instead of failing the job as "every eligible site refused"."""
    t = healthy
    t.sim["alpha"].slow.mode = "lost"
    t.sim["beta"].slow.mode = "lost"
    jid = t.create()
    for _ in ("alpha", "beta"):
        with pytest.raises(TryLater, match="outcome is unknown"):
            t.submit(jid)
        t.age_inflight(jid, 60)
    t.sim["alpha"].slow.mode = None
    t.sim["beta"].slow.mode = None
    result = t.submit(jid)
    h = t.job(jid)
    assert result.startswith("submitted to ") and h["state"] == "QUEUED", (result, h.get("message"))
    outcomes = [(a["site"], a["outcome"]) for a in h["attempts"]]
    assert sorted(o for o in outcomes if o[1] == "abandoned") == [("alpha", "abandoned"), ("beta", "abandoned")]
    assert outcomes[-1] == (h["site"], "submitted")
    assert len(t.sim["alpha"].jobs_tagged(jid)) + len(t.sim["beta"].jobs_tagged(jid)) == 1
    assert t.watched("alpha") == {jid} and t.watched("beta") == {jid}


def test_a_pinned_job_whose_site_confirmed_no_job_is_tried_there_again(healthy: Tasks) -> None:
    t = healthy
    t.sim["alpha"].slow.mode = "lost"
    jid = t.create(site="alpha")
    with pytest.raises(TryLater, match="outcome is unknown"):
        t.submit(jid)
    t.age_inflight(jid, 60)
    assert "submitted to alpha" in t.submit(jid)
    assert len(t.sim["alpha"].jobs_tagged(jid)) == 1 and t.sim["beta"].jobs() == []
    assert [a["outcome"] for a in t.job(jid)["attempts"]] == ["uncertain", "submitted"]
    assert t.watched("alpha") == set()


def test_an_earlier_try_found_at_the_facility_is_settled_not_repeated(healthy: Tasks) -> None:
    """A worker killed after sending: its mark says where; the next run finds the job there."""
    t = healthy
    t.sim["alpha"].slow.mode = "made"
    jid = t.create()
    t.mark_inflight(jid, "beta", age=60)
    # beta has nothing: the mark is cleared and the job placed (alpha makes it, answers late)
    assert "settled after a timeout" in t.submit(jid)
    assert len(t.sim["alpha"].jobs_tagged(jid)) == 1
    jid2 = t.create(site="alpha")
    t.submit(jid2)  # made at alpha
    native = t.job(jid2)["native_id"]
    t.unrecord_answer(jid2, "alpha")  # as if the worker that sent it died before recording the answer
    assert t.submit(jid2) == "settled at alpha"
    assert t.job(jid2)["native_id"] == native and len(t.sim["alpha"].jobs_tagged(jid2)) == 1


def test_a_cancel_before_placement_reaches_no_facility(healthy: Tasks) -> None:
    t = healthy
    jid = t.create(LONG)
    t.request_cancel(jid)
    assert t.submit(jid) == "canceled"
    assert t.job(jid)["state"] == "CANCELED"
    assert t.sim["alpha"].jobs() == [] and t.sim["beta"].jobs() == []


def test_no_eligible_site_waits_then_fails_after_no_site_timeout(make_tasks: Callable[..., Tasks]) -> None:
    t = make_tasks(no_site_timeout=5)  # no site checked: none is eligible
    fresh = t.create()
    with pytest.raises(TryLater, match="no eligible site yet"):
        t.submit(fresh)
    h = t.job(fresh)
    assert h["state"] == "NEW" and h["placement"]["site"] is None
    assert all(not r["eligible"] for r in h["placement"]["ranking"])
    old = t.create()
    t.age(old, 6)  # waited longer than no_site_timeout
    assert t.submit(old) == "failed: no eligible site"
    h = t.job(old)
    assert h["state"] == "FAILED" and "no eligible site after" in h["message"] and "never checked" in h["message"]
    assert t.sim["alpha"].jobs() == [] and t.sim["beta"].jobs() == []


def test_pinned_to_a_site_goes_only_there(healthy: Tasks) -> None:
    jid = healthy.create(site="beta")
    assert "submitted to beta" in healthy.submit(jid)
    assert healthy.sim["alpha"].jobs() == []


def test_an_unanswerable_facility_holds_the_job_rather_than_risk_a_duplicate(healthy: Tasks) -> None:
    """A 503 to everything: whether the submission made a job cannot be told, so the job waits
    with its mark (no failover), and is placed again only after UNSURE_GIVE_UP."""
    t = healthy
    t.sim["alpha"].control("chaos", {"error_rate": 1.0, "status": 503})
    jid = t.create()
    with pytest.raises(TryLater, match="cannot check whether the job was made"):
        t.submit(jid)
    h = t.job(jid)
    assert t.inflight(jid) == "alpha" and [a["outcome"] for a in h["attempts"]] == ["uncertain"]
    assert t.sim["beta"].jobs() == []
    with pytest.raises(TryLater, match="cannot settle the earlier try at alpha"):
        t.submit(jid)
    assert t.sim["beta"].jobs() == []
    t.age_inflight(jid, 60)  # unanswerable for a long while: placed elsewhere, alpha watched
    assert "submitted to beta" in t.submit(jid)
    attempts = t.job(jid)["attempts"]
    assert [(a["site"], a["outcome"]) for a in attempts] == [
        ("alpha", "uncertain"), ("alpha", "abandoned"), ("beta", "submitted")]
    assert "could not check for" in attempts[1]["error"]
    assert t.watched("alpha") == {jid} and t.assigned("alpha") == set()
    t.sim["alpha"].control("chaos", {})
    assert t.sim["alpha"].jobs() == []


def test_an_unanswerable_facility_holds_a_job_pinned_to_it(healthy: Tasks) -> None:
    """Pinned: nowhere else to go, so it waits for the facility whatever the time; when its
    retries run out it fails, and the site is watched for a copy made late."""
    t = healthy
    t.sim["alpha"].control("chaos", {"error_rate": 1.0, "status": 503})
    jid = t.create(site="alpha")
    with pytest.raises(TryLater, match="cannot check whether the job was made"):
        t.submit(jid)
    t.age_inflight(jid, 60)
    with pytest.raises(TryLater, match="cannot settle the earlier try at alpha"):
        t.submit(jid)
    assert t.inflight(jid) == "alpha" and t.watched("alpha") == set() and t.sim["beta"].jobs() == []
    t.call(submit.give_up, t.rt, jid, TryLater("out of retries"))
    assert t.job(jid)["state"] == "FAILED" and t.watched("alpha") == {jid}
    assert t.inflight(jid) is None  # the watch holds the try now, not the job's mark


def test_out_of_retries_a_waiting_job_fails_with_the_last_reason(healthy: Tasks) -> None:
    t = healthy
    jid = t.create()
    t.call(submit.give_up, t.rt, jid, TryLater("no eligible site yet (alpha: down)"))
    h = t.job(jid)
    assert h["state"] == "FAILED" and h["message"] == "gave up after retries: no eligible site yet (alpha: down)"
    assert t.watched("alpha") == set()  # nothing was sent: nothing to watch
    placed = t.create()
    t.submit(placed)
    t.call(submit.give_up, t.rt, placed, TryLater("late"))  # a job already placed is left alone
    assert t.job(placed)["state"] == "QUEUED" and "gave up" not in t.job(placed).get("message", "")


def test_refused_credentials_mark_the_site_down_and_fail_over(healthy: Tasks) -> None:
    t = healthy
    before = t.call(t.rt.health.get, "alpha")
    assert before.components and before.failures == 0
    t.sim["alpha"].control("credentials", {"valid": False})
    jid = t.create()
    assert "submitted to beta" in t.submit(jid)
    tries = t.job(jid)["attempts"]
    assert [(a["site"], a["outcome"]) for a in tries] == [("alpha", "auth"), ("beta", "submitted")]
    health = t.call(t.rt.health.get, "alpha")
    assert health.state == "down" and "credentials refused" in (health.error or "")
    # the last reading of the site is kept beside the refusal, which counts as a failed check
    assert health.components == before.components and health.failures == 1
    assert t.sim["alpha"].jobs() == []


def test_after_a_redis_restart_a_job_made_before_it_is_found_by_its_tag(healthy: Tasks) -> None:
    """Redis lost the job's last second (the inflight mark, its QUEUED): a job accepted before
    Redis started asks every site for its tag before it is placed."""
    t = healthy
    jid = t.create(site="beta")
    assert "submitted to beta" in t.submit(jid)
    native = t.job(jid)["native_id"]
    t.r.hset(t.keys.job(jid), mapping={"state": "NEW", "native_id": "", "site": ""})  # as AOF lost it
    t.r.hdel(t.keys.job(jid), "inflight")
    t.r.hdel(t.keys.assigned("beta"), jid)  # and the try's claim on beta's backlog
    t.age(jid, 10 * 86400)  # accepted long before this Redis started
    assert t.submit(jid) == "settled at beta (after a Redis restart)"
    h = t.job(jid)
    assert (h["state"], h["site"], h["native_id"]) == ("QUEUED", "beta", native)
    assert h["attempts"][-1]["outcome"] == "settled" and t.assigned("beta") == {jid}
    assert len(t.sim["beta"].jobs_tagged(jid)) == 1 and t.sim["alpha"].jobs() == []


def test_after_a_redis_restart_a_job_found_nowhere_is_placed(healthy: Tasks) -> None:
    t = healthy
    jid = t.create()
    t.age(jid, 10 * 86400)
    assert "submitted to alpha" in t.submit(jid)
    assert len(t.sim["alpha"].jobs_tagged(jid)) == 1 and t.sim["beta"].jobs() == []


def test_after_a_redis_restart_a_site_that_cannot_be_asked_holds_the_job(healthy: Tasks) -> None:
    t = healthy
    t.sim["beta"].control("chaos", {"error_rate": 1.0, "status": 503})
    jid = t.create()
    t.age(jid, 10 * 86400)
    with pytest.raises(TryLater, match="cannot check beta for an earlier try after a Redis restart"):
        t.submit(jid)
    assert t.sim["alpha"].jobs() == [] and t.job(jid)["state"] == "NEW"
