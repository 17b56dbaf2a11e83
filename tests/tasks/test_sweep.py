"""The sweeper: a 202 means the job will be worked on, so a NEW job whose submission was lost
is enqueued again (after a grace period); one whose submission RQ still holds is left alone;
one whose RQ status says queued while no queue holds it is re-enqueued once two sweeps agree."""

from __future__ import annotations

from rq import Queue
from rq.job import Job as RQJob

from broker import queues
from tests.tasks.conftest import Tasks

OLD = 120.0  # seconds since acceptance, well past the sweeper's grace


def submissions(t: Tasks) -> list[str]:
    """What RQ's submission queue holds, in order."""
    return list(Queue(queues.SUBMIT, connection=t.rq).job_ids)


def lose_submission(t: Tasks, job_id: str) -> None:
    RQJob.fetch(f"submit-{job_id}", connection=t.rq).delete()


def test_a_lost_submission_is_enqueued_again(tasks: Tasks) -> None:
    t = tasks
    lost, young, held = t.create(), t.create(), t.create()
    for jid in (lost, young):
        lose_submission(t, jid)
    t.age(lost, OLD)
    t.age(held, OLD)
    assert submissions(t) == [f"submit-{held}"]
    t.sweep()  # a first sighting: it might be mid-move, look again next round
    assert submissions(t) == [f"submit-{held}"]
    t.sweep()
    # the old lost one is back; the young one is in its grace period; the held one is not doubled
    assert sorted(submissions(t)) == sorted([f"submit-{held}", f"submit-{lost}"])
    t.sweep()
    t.sweep()
    assert sorted(submissions(t)) == sorted([f"submit-{held}", f"submit-{lost}"])


def test_a_job_that_is_not_new_is_never_swept(healthy: Tasks) -> None:
    t = healthy
    jid = t.create()
    t.submit(jid)
    lose_submission(t, jid)
    t.age(jid, OLD)
    t.sweep()
    t.sweep()
    assert submissions(t) == []


def test_a_submission_queued_in_name_only_is_enqueued_again_after_two_sweeps(tasks: Tasks) -> None:
    t = tasks
    jid = t.create()
    t.age(jid, OLD)
    # a Redis crash kept the RQ job's hash (status queued) but lost its place in the queue
    t.rq.lrem(Queue(queues.SUBMIT, connection=t.rq).key, 0, f"submit-{jid}")
    assert RQJob.fetch(f"submit-{jid}", connection=t.rq).get_status().value == "queued"
    t.sweep()
    assert submissions(t) == []  # one sweep is not enough: it might be mid-move
    t.sweep()
    assert submissions(t) == [f"submit-{jid}"]
