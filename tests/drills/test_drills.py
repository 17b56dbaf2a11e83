"""Issue 5's drills: processes killed on purpose, then the broker's jobs against the facilities'."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.drills.conftest import DRILL_LINES, Cluster, kill
from tests.support.servers import wait_until

# Redis with AOF `appendfsync everysec` (deploy/redis.conf, the drills' Redis) writes its AOF
# before it replies, except while a background fsync lags: then it holds the writes back for up
# to 2 s (flushAppendOnlyFile), and a SIGKILL loses them. The README promises exactly this:
# jobs whose 202 came in the last 2 s may be lost, no earlier one
FSYNC_WINDOW = 2.0

pytestmark = [pytest.mark.drill, pytest.mark.slow]


def _submitting(c: Cluster, timeout: float = 30) -> tuple[int, str]:
    """(index in c.workers, broker job id) of a worker caught with a submission in flight."""
    r = c.r()

    def caught() -> tuple[int, str] | None:
        names = {f"drill-w{i + 1}": i for i in range(len(c.workers))}
        for rq_id, worker in r.hgetall("superfed:claims").items():  # the job each worker has taken
            name = worker.rpartition("/")[0]  # "<name>/<token of this start>"
            if rq_id.startswith("submit-") and name in names:
                jid = rq_id.removeprefix("submit-")
                if r.hget(f"superfed:job:{jid}", "inflight"):
                    return names[name], jid
        return None

    return wait_until(caught, timeout=timeout, interval=0.02, what="a worker caught mid-submission")


def test_worker_sigkill_mid_submission(cluster: Cluster) -> None:
    """1. A worker SIGKILLed while a submission is on the wire at a slow facility: another worker
    takes its jobs over once its lease runs out (default settings: within about 5 s), and every
    job still reaches exactly one facility job, within 60 s of the kill."""
    c = cluster
    c.chaos(("iri",), latency_ms=1500)  # ALCF is slow, and every job goes there
    accepted = c.post(10, "sleep 1", "d1", site="alcf")
    i, jid = _submitting(c)
    kill(c.workers[i])
    killed_at = time.monotonic()
    taken = c.wait_taken_over(f"submit-{jid}", f"drill-w{i + 1}", timeout=60)
    c.start_worker()  # what a supervisor (systemd, Kubernetes) does
    placed = c.wait_jobs([jid], {"QUEUED", "ACTIVE", "COMPLETED"}, timeout=60)
    all_placed = c.wait_jobs(set(accepted.values()), {"QUEUED", "ACTIVE", "COMPLETED"}, timeout=60)
    c.chaos()
    done = c.wait_jobs(set(accepted.values()), timeout=60)
    a = c.audit("worker-sigkill", accepted)
    outcomes = [x["outcome"] for x in a.jobs[jid]["attempts"]]
    a.report(**{"taken over after": taken - killed_at, "killed job placed after": placed - killed_at,
                "all placed after": all_placed - killed_at,
                "all finished after": done - killed_at})
    a.check()
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
    left = c.r().hget("superfed:claims", f"submit-{jid}")
    assert left is None, f"the job was left claimed by {left} (abandoned, not finished)"
    c.chaos()
    done = c.wait_jobs(set(accepted.values()), timeout=60)
    a = c.audit("worker-sigterm", accepted)
    a.report(**{"worker exited after": exited, "all finished after": done - t0})
    a.check()


async def _burst_with_api_stop(c: Cluster, sig: int, prefix: str) -> dict[str, object]:
    """500 POSTs with keys; the API gets ``sig`` after 150 answers and is started again; the
    client asks again (same key, same body) for whatever got no answer."""
    out: dict[str, str] = {}
    seen: Counter[str] = Counter()
    burst = asyncio.create_task(c.apost(500, "sleep 1", prefix, concurrency=50, out=out, seen=seen, give_up=90))
    while len(out) < 150 and not burst.done():
        await asyncio.sleep(0.002)
    before = dict(out)
    api = c.api_proc
    assert api is not None
    api.signal(sig)
    stopped_at = time.monotonic()
    rc = await asyncio.to_thread(api.proc.wait, 20)
    exited = time.monotonic() - stopped_at
    await asyncio.to_thread(c.start_api)
    back = time.monotonic() - stopped_at
    await burst
    return {"out": out, "before": before, "seen": seen, "rc": rc, "exited": exited, "back": back,
            "answered": time.monotonic() - stopped_at, "stopped_at": stopped_at}


def test_api_sigkill_during_burst(cluster: Cluster) -> None:
    """2. The API SIGKILLed during 500 POSTs with Idempotency-Keys; the client retries what got
    no answer against the restarted API: 500 jobs, no duplicates, every 202 kept."""
    c = cluster
    res = asyncio.run(_burst_with_api_stop(c, signal.SIGKILL, "d2"))
    out, before = res["out"], res["before"]
    assert isinstance(out, dict) and isinstance(before, dict)
    assert len(out) == 500
    assert all(out[k] == v for k, v in before.items()), "a 202 answered before the kill changed its job"
    done = c.wait_jobs(set(out.values()), timeout=120)
    a = c.audit("api-sigkill", out)
    a.report(**{"API answering again after": res["back"], "all 500 answered after": res["answered"],  # type: ignore[arg-type]
                "all finished after": done - res["stopped_at"]})  # type: ignore[operator]
    a.check()
    assert len([j for j in a.jobs.values() if j["name"].startswith("d2-")]) == 500


def test_api_sigterm_finishes_requests(cluster: Cluster) -> None:
    """8b. SIGTERM to the API during a burst: requests it had taken are answered before it
    exits (cleanly); new ones are refused and retried against the restarted API."""
    c = cluster
    res = asyncio.run(_burst_with_api_stop(c, signal.SIGTERM, "d8a"))
    out, seen = res["out"], res["seen"]
    assert isinstance(out, dict) and isinstance(seen, Counter)
    # uvicorn shuts down gracefully, then re-raises the signal for the exit status (-15)
    assert res["rc"] in (0, -signal.SIGTERM) and res["exited"] < 10, "the API did not stop gracefully"
    # refused connections never reached it; anything else would be a request dropped half-way
    # (a request sent on a keep-alive connection just as the server closes it idle is HTTP's
    # own race: the client cannot tell it from a drop, and asks again with the same key)
    dropped = sum(v for k, v in seen.items() if not k.isdigit() and k not in ("ConnectError", "ConnectTimeout"))
    assert dropped <= 5, f"requests dropped mid-way by a graceful shutdown: {seen}"
    assert len(out) == 500
    c.wait_jobs(set(out.values()), timeout=120)
    a = c.audit("api-sigterm", out)
    a.report(**{"API exited after": res["exited"], "API answering again after": res["back"]})  # type: ignore[arg-type]
    DRILL_LINES.append(f"api-sigterm: answers {dict(seen)}; {dropped} lost to the keep-alive race and asked again")
    a.check()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_redis_restart_during_activity(cluster: Cluster, sig: int) -> None:
    """3. redis-server stopped while jobs come in and workers submit, exactly as the README's
    "Reliability" promises per durability level (AOF ``appendfsync everysec`` here): SIGTERM
    loses no accepted job; SIGKILL may lose only jobs whose 202 came in the last
    ``FSYNC_WINDOW`` (2) seconds before the kill, every earlier one is kept and finishes. The API
    answers 503 meanwhile; API and workers recover on their own."""
    c = cluster
    worker_pids = [w.pid for w in c.workers]
    out: dict[str, str] = {}
    at: dict[str, float] = {}
    seen: Counter[str] = Counter()

    async def drive() -> dict[str, float]:
        burst = asyncio.create_task(c.apost(200, "sleep 1", "d3", concurrency=4, pace=0.05, out=out, at=at,
                                            seen=seen, give_up=60))
        while len(out) < 80:
            await asyncio.sleep(0.01)
        redis_proc = c.redis_proc
        assert redis_proc is not None
        redis_proc.signal(sig)
        killed = time.monotonic()
        await asyncio.to_thread(redis_proc.proc.wait, 10)
        await asyncio.sleep(3)  # Redis away: the API must answer 503, not crash
        during = dict(seen)
        assert c.api_proc is not None and c.api_proc.proc.poll() is None, "the API died with Redis"
        async with httpx.AsyncClient(base_url=c.api, headers=c.headers("viewer"), timeout=10) as h:
            st = await h.get("/api/v1/status")
            assert st.status_code == 503, st.text
        await asyncio.to_thread(c.start_redis)
        restarted = time.monotonic()
        first_ok = None
        async with httpx.AsyncClient(base_url=c.api, headers=c.headers("viewer"), timeout=10) as h:
            while first_ok is None:
                with contextlib.suppress(httpx.HTTPError):
                    if (await h.get("/api/v1/status")).status_code == 200:
                        first_ok = time.monotonic()
                await asyncio.sleep(0.05)
        await burst
        return {"killed": killed, "restarted": restarted, "api": first_ok - restarted, "503s": during.get("503", 0)}

    t = asyncio.run(drive())
    assert t["503s"] > 0, "no request saw the outage"
    # SIGTERM: every accepted job; SIGKILL: every job acknowledged before the fsync window
    must = {jid for k, jid in out.items() if at[k] < t["killed"] - FSYNC_WINDOW} if sig == signal.SIGKILL else None
    ids = set(out.values())
    jobs_now = c.all_jobs()
    survivors = {j for j in ids if j in jobs_now}
    done = c.wait_jobs(survivors, timeout=120)
    name = "redis-" + ("sigterm" if sig == signal.SIGTERM else "sigkill")
    a = c.audit(name, out, must_survive=must)
    gone = len(ids - survivors)
    a.report(**{"Redis down for": t["restarted"] - t["killed"], "API answering after Redis is back": t["api"],
                "all finished after Redis is back": done - t["restarted"]})
    if gone:
        ages = sorted(t["killed"] - at[k] for k, jid in out.items() if jid not in survivors)
        DRILL_LINES.append(f"{name}: {gone} jobs acknowledged {ages[0]:.2f}-{ages[-1]:.2f} s before the kill"
                           f" were not kept (allowed: inside the {FSYNC_WINDOW:.0f} s fsync window)")
    a.check()  # every job in ``must`` is kept, finished, once at one facility
    assert [w.pid for w in c.workers] == worker_pids and all(w.proc.poll() is None for w in c.workers)
    if sig == signal.SIGTERM:
        assert gone == 0


def test_facility_down_mid_burst(cluster: Cluster) -> None:
    """4. NERSC goes down mid-burst: new jobs go elsewhere; the jobs already there are
    still tracked and finish once it is back."""
    c = cluster
    first = c.post(30, "sleep 40", "d4a")  # 4 s at the drills' time scale
    c.wait_jobs(set(first.values()), {"QUEUED", "ACTIVE"}, timeout=60)
    there = [j for j in first.values() if c.all_jobs()[j]["site"] == "nersc"]
    assert there, "no job went to NERSC before the outage"
    # compute down, and nothing else answers either (503 on every protocol request)
    c.sim("sfapi", "outage", {"component": "compute", "state": "down"})
    c.chaos(("sfapi",), error_rate=1.0)
    down_at = time.monotonic()
    second = c.post(30, "sleep 1", "d4b")
    c.wait_jobs(set(second.values()), timeout=60)
    jobs = c.all_jobs()
    assert not [j for j in second.values() if jobs[j]["site"] == "nersc"], "a new job went to the site that is down"
    time.sleep(max(0.0, down_at + 6 - time.monotonic()))  # NERSC's jobs have ended there by now
    jobs = c.all_jobs()
    # still followed at NERSC (not failed, not sent elsewhere) while it is down
    assert all(jobs[j]["state"] in ("QUEUED", "ACTIVE", "COMPLETED") and jobs[j]["site"] == "nersc" for j in there)
    waiting = sum(1 for j in there if jobs[j]["state"] != "COMPLETED")
    c.sim("sfapi", "outage", {"component": "compute", "state": "up"})
    c.chaos(("sfapi",))
    up_at = time.monotonic()
    done = c.wait_jobs(there, timeout=60)
    c.wait_jobs(set(first.values()), timeout=60)
    a = c.audit("facility-down", {**first, **second})
    a.report(**{"NERSC's jobs finished after it came back": max(0.0, done - up_at)})
    DRILL_LINES.append(f"facility-down: {len(there)} jobs at NERSC when it went down, {waiting} still waiting for it")
    a.check()


@pytest.mark.parametrize("cluster", [{"workers": 4}], indirect=True)
def test_chaos_everywhere(cluster: Cluster) -> None:
    """5. 20% 503s and 300 ms on every facility for 500 jobs: all finish, attempts recorded."""
    c = cluster
    c.chaos(latency_ms=300, error_rate=0.2)
    t0 = time.monotonic()
    accepted = c.post(500, "sleep 1", "d5", concurrency=50)
    done = c.wait_jobs(set(accepted.values()), timeout=240)
    c.chaos()
    a = c.audit("chaos", accepted)
    tries = [x for j in accepted.values() for x in a.jobs[j]["attempts"]]
    failed = [x for x in tries if x["outcome"] not in ("submitted", "settled")]
    a.report(**{"all finished after": done - t0})
    DRILL_LINES.append(f"chaos: {len(tries)} attempts recorded, {len(failed)} of them failed tries")
    a.check()
    assert all(a.jobs[j]["attempts"][-1]["outcome"] in ("submitted", "settled") for j in accepted.values())
    assert all(x["error"] for x in failed)


def test_credentials_revoked(cluster: Cluster) -> None:
    """6. CSCS refuses the broker's credentials: marked down with a reason a person reads, its
    jobs go elsewhere, nothing loops; back when the credentials work again."""
    c = cluster
    c.sim("firecrest", "credentials", {"valid": False, "revoke_tokens": True})
    t0 = time.monotonic()
    accepted = c.post(30, "sleep 1", "d6")
    detected = None
    with c.client() as h:
        while time.monotonic() < t0 + 30:
            cscs = next(s for s in h.get("/api/v1/status").json()["sites"] if s["site"] == "cscs")
            if cscs["state"] == "down" and "credential" in (cscs.get("error") or "").lower():
                detected = time.monotonic()
                reason = cscs["error"]
                break
            time.sleep(0.2)
    assert detected, f"CSCS not marked down for its credentials: {cscs}"
    c.wait_jobs(set(accepted.values()), timeout=60)
    time.sleep(6)  # three health intervals: does anything keep hammering CSCS?
    jobs = c.all_jobs()
    at_cscs = [x for j in jobs.values() for x in j["attempts"] if x["site"] == "cscs"]
    assert not [j for j in accepted.values() if jobs[j]["site"] == "cscs"]
    assert len(at_cscs) <= 10, f"{len(at_cscs)} tries at CSCS with refused credentials"
    c.sim("firecrest", "credentials", {"valid": True})
    fixed = time.monotonic()
    with c.client() as h:
        while time.monotonic() < fixed + 30:
            cscs = next(s for s in h.get("/api/v1/status").json()["sites"] if s["site"] == "cscs")
            if cscs["state"] == "up":
                break
            time.sleep(0.2)
    assert cscs["state"] == "up", cscs
    back = time.monotonic()
    a = c.audit("credentials", accepted)
    a.report(**{"marked down after": detected - t0, "up again after the fix": back - fixed})
    DRILL_LINES.append(f"credentials: GET /api/v1/status said {reason!r}; {len(at_cscs)} tries at CSCS")
    a.check()


def test_garbage_answers(cluster: Cluster) -> None:
    """7. Facilities answering garbage 30% of the time: retriable errors, no crashed worker."""
    c = cluster
    pids = [w.pid for w in c.workers]
    c.chaos(garbage_rate=0.3)
    t0 = time.monotonic()
    accepted = c.post(60, "sleep 1", "d7")
    done = c.wait_jobs(set(accepted.values()), timeout=120)
    c.chaos()
    a = c.audit("garbage", accepted)
    a.report(**{"all finished after": done - t0})
    a.check()
    assert [w.pid for w in c.workers] == pids and all(w.proc.poll() is None for w in c.workers)
    for i in range(len(c.workers)):
        log = (c.dir / f"worker-{i + 1}.log").read_text()
        # RQ logs each retried job with its traceback; what must not appear is RQ's loop dying
        assert "restarting it" not in log and "quitting" not in log, log[-2000:]


def _alcf_first_and_quick_to_give_up(data: dict[str, Any]) -> None:
    """Every job tries ALCF first; the broker gives up waiting for ALCF's answer after 2 s."""
    data["placement"] = {**data.get("placement", {}), "strategy": "priority", "priority": ["alcf", "nersc", "cscs"]}
    for site in data["sites"]:
        if site["name"] == "alcf":
            site["http"] = {"connect_timeout": 1.0, "read_timeout": 2.0}


@pytest.mark.parametrize("cluster", [{"edit": _alcf_first_and_quick_to_give_up}], indirect=True)
def test_late_answers_to_submissions_make_no_second_job(cluster: Cluster) -> None:
    """9. (issue 15) ALCF, where every job goes first, answers submissions late; nothing else.
    (a) It makes each job at once and holds the answer past the broker's timeout: the tag lookup
    finds the job; no second one anywhere. (b) It makes each job 15 s late, after the broker gave
    the try up and placed the job at NERSC: that late copy is canceled at ALCF's next poll and
    recorded on the job. Either way, one job runs per accepted job."""
    c = cluster
    c.chaos(("iri",), only="submit", answer_delay_ms=4000)
    first = c.post(20, "sleep 1", "d9a")
    c.wait_jobs(set(first.values()), timeout=180)
    a = c.audit("late-answer", first)
    settled = sum(1 for j in first.values() if a.jobs[j]["attempts"][-1]["outcome"] == "settled")
    a.report()
    a.check()  # no facility holds a second job of any of them
    assert settled > 0, "no submission was answered late: the chaos did not bite"

    c.chaos(("iri",), only="submit", latency_ms=15_000)
    t0 = time.monotonic()
    second = c.post(20, "sleep 100", "d9b")  # 10 s at the drill's time scale: still running when copies come
    c.wait_jobs(set(second.values()), timeout=180)
    jobs = c.all_jobs()
    given_up = [j for j in second.values() if any(x["outcome"] == "abandoned" for x in jobs[j]["attempts"])]
    assert given_up, "no try was given up: the chaos did not bite"

    def copies_canceled() -> dict[str, dict[str, Any]] | None:
        now = c.all_jobs()
        ok = all(any(x["outcome"] == "canceled-copy" for x in now[j]["attempts"]) for j in given_up)
        return now if ok else None

    # each given-up try's job shows up at ALCF ~15 s after its request: canceled at the next poll
    jobs = wait_until(copies_canceled, timeout=120, interval=0.5, what="every late copy canceled")
    copies_done = time.monotonic() - t0
    c.chaos(("iri",))
    b = c.audit("late-creation", second, expect={"COMPLETED"})
    alcf = {str(row["id"]): row for row in b.held["iri"]}
    # a second copy that the job records as canceled at ALCF, and that ALCF ended canceled (it
    # never ran to its end), is not a duplicated job; any other second copy is
    explained = []
    for tag in b.duplicated:
        recorded = {x["native_id"].split(".")[0] for x in jobs.get(tag, {}).get("attempts", [])
                    if x["outcome"] == "canceled-copy"}
        if recorded and all(alcf.get(n, {}).get("state") == "CANCELLED" for n in recorded):
            explained.append(tag)
    b = dataclasses.replace(b, duplicated=[t for t in b.duplicated if t not in explained])
    DRILL_LINES.append(f"late-creation: {len(given_up)} tries given up, {len(explained)} late copies canceled "
                       f"(the last {copies_done:.1f} s after the burst), none ran to its end")
    b.report()
    b.check()
    assert sorted(explained) == sorted(given_up)
