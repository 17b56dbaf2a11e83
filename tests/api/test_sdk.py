"""The Python SDK (``broker.client``) against a real broker and Redis: typed answers, the cursor,
waiting, problems as one exception, events, files, and a retried submission that makes one job."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import pytest
import redis

from broker.client import ApiError, AsyncClient, Client, RetryPolicy
from broker.schemas import Job
from broker.store.keys import Keys
from tests.api.live_broker import ADMIN, ROOT, VIEWER, Broker, job_body, live

__all__ = ["live"]  # the fixture, imported for pytest


class LoseFirstAnswer(httpx.BaseTransport):
    """The network between client and broker: the first POST reaches the broker and is handled,
    and then its answer is lost (the connection drops), as when a proxy times out."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.posts: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        if request.method == "POST":
            self.posts.append(request.headers.get("Idempotency-Key"))
            if len(self.posts) == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset after the request was sent", request=request)
        return response


def test_a_submission_retried_after_a_lost_answer_makes_one_job(live: Broker) -> None:
    net = LoseFirstAnswer()
    with Client(live.url, ADMIN, transport=net, retry=RetryPolicy(backoff=0)) as c:
        job = c.submit(job_body("once"))
        assert isinstance(job, Job) and job.state == "NEW"
        assert len(net.posts) == 2 and net.posts[0] == net.posts[1] and net.posts[0]  # the same key, twice
        assert [j.id for j in c.iter_jobs()] == [job.id]  # the broker holds one job, the one returned


def test_each_submission_gets_its_own_key(live: Broker) -> None:
    with Client(live.url, ADMIN) as c:
        a, b = c.submit(job_body("a")), c.submit(job_body("a"))  # the same body twice is two jobs
        assert a.id != b.id
        # a caller's own key: a repeat replays the first job
        assert c.submit(job_body("k"), idempotency_key="key-1").id == c.submit(job_body("k"),
                                                                                idempotency_key="key-1").id


def test_submit_many_keeps_order_and_each_refusal_in_its_place(live: Broker) -> None:
    bodies: list[dict[str, Any]] = [job_body(f"b{i}") for i in range(6)]
    bodies[3] = job_body("big", resources={"node_count": 1}, attributes={"account": "someone-else"})
    with Client(live.url, ADMIN) as c:
        out = c.submit_many(bodies, concurrency=3)
        assert [type(x).__name__ for x in out] == ["Job", "Job", "Job", "ApiError", "Job", "Job"]
        jobs = [x for x in out if isinstance(x, Job)]
        assert [j.name for j in jobs] == ["b0", "b1", "b2", "b4", "b5"]
        assert len({j.id for j in jobs}) == 5
        err = out[3]
        assert isinstance(err, ApiError) and err.status == 422
        assert [e.field for e in err.errors] == ["spec.attributes.account"]
        assert len(list(c.iter_jobs(page_size=2))) == 5  # three pages through the cursor


def test_submit_many_sends_batches_and_a_lost_answer_makes_no_second_job(live: Broker) -> None:
    net = LoseFirstAnswer()  # the first batch is written, and its answer lost
    with Client(live.url, ADMIN, transport=net, retry=RetryPolicy(backoff=0)) as c:
        out = c.submit_many([job_body(f"n{i}") for i in range(6)], batch_size=4)
        assert [x.name for x in out if isinstance(x, Job)] == [f"n{i}" for i in range(6)]
        # the first batch twice (its answer lost), then the second: three requests, not six
        assert len(net.posts) == 3
        assert sorted(j.id for j in c.iter_jobs()) == sorted(x.id for x in out if isinstance(x, Job))
    with Client(live.url, ADMIN) as c, pytest.raises(ValueError, match="batch_size"):
        c.submit_many([job_body("x")], batch_size=1001)


def test_a_problem_is_one_exception_with_the_brokers_words(live: Broker) -> None:
    with Client(live.url, ADMIN) as c:
        with pytest.raises(ApiError) as exc:
            c.job("j0000000000000000nope")
        assert exc.value.status == 404 and exc.value.title == "Not found"
        with pytest.raises(ApiError) as exc:
            c.submit({"project": "m1", "spec": {"executable": "/bin/true"}, "placement": {"site": "nowhere"}})
        assert exc.value.status == 422 and "nowhere" in exc.value.detail
        assert exc.value.errors and exc.value.errors[0].field == "placement"
        with pytest.raises(ApiError) as exc:  # a malformed body is refused before it is sent, alike
            c.submit({"project": "m1", "spec": {"executable": 3}})
        assert exc.value.status == 422 and [e.field for e in exc.value.errors] == ["spec.executable"]
    with Client(live.url, VIEWER) as c, pytest.raises(ApiError) as exc:
        c.submit(job_body())
    assert exc.value.status == 403
    with Client("http://127.0.0.1:9", ADMIN, retry=RetryPolicy(attempts=2, backoff=0)) as c, \
            pytest.raises(ApiError) as exc:
        c.sites()
    assert exc.value.status == 0 and "cannot reach" in exc.value.detail


def test_wait_returns_the_final_job_and_reports_each_move(live: Broker) -> None:
    with Client(live.url, ADMIN, poll_interval=0.01) as c:
        job = c.submit(job_body())
        seen: list[str] = []
        moved = threading.Event()

        def on_change(j: Job) -> None:
            seen.append(j.state)
            moved.set()

        def facility() -> None:  # what the worker's tasks would record, once the client has looked
            moved.wait(30)
            live.advance(job.id, "QUEUED", site="alcf")
            live.advance(job.id, "COMPLETED", exit_code=0)

        t = threading.Thread(target=facility)
        t.start()
        done = c.wait(job.id, timeout=60, on_change=on_change)
        t.join()
        assert done.state == "COMPLETED" and done.exit_code == 0
        assert seen[0] == "NEW" and seen[-1] == "COMPLETED"
        other = c.submit(job_body())
        with pytest.raises(TimeoutError, match="NEW"):
            c.wait(other.id, timeout=0)


def test_status_sites_and_admin_calls_are_typed(live: Broker) -> None:
    with Client(live.url, ADMIN) as c:
        assert [s.name for s in c.sites()] == ["alcf"]
        assert c.status().sites[0].site == "alcf"
        assert c.drain_site("alcf").draining is True
        assert c.enable_site("alcf").draining is False
        actions = [e.action for e in c.audit().items]
        assert actions[:2] == ["site.enable", "site.drain"]
        made = c.create_token("bot", role="viewer", projects=["m1"])
        assert made.token and made.id in [t.id for t in c.tokens()]
        c.revoke_token(made.id)
        assert made.id not in [t.id for t in c.tokens()]


def test_files_through_the_sdk(live: Broker) -> None:
    with Client(live.url, ADMIN) as c:
        c.write_file("alcf", f"{ROOT}/in.txt", b"hello\n", project="m1")
        assert c.read_file("alcf", f"{ROOT}/in.txt", project="m1") == b"hello\n"
        assert "in.txt" in [e.name for e in c.list_files("alcf", ROOT, project="m1")]
        with pytest.raises(ApiError) as exc:
            c.read_file("alcf", "/etc/passwd", project="m1")
        assert exc.value.status == 403


def test_events_yields_health_changes_as_published(live: Broker) -> None:
    r = redis.Redis.from_url(live.settings.redis_url)
    got = threading.Event()

    def publish() -> None:  # until the stream has one (the subscription starts when the client connects)
        msg = b'{"site":"alcf","component":null,"state":"down","previous":"up","at":"2026-01-01T00:00:00.000Z"}'
        while not got.wait(0.05):
            r.publish(Keys(live.settings.namespace).events, msg)

    t = threading.Thread(target=publish)
    t.start()
    try:
        with Client(live.url, ADMIN) as c:
            ev = next(iter(c.events()))
    finally:
        got.set()
        t.join()
        r.close()
    assert (ev.site, ev.component, ev.state, ev.previous) == ("alcf", None, "down", "up")


def test_the_async_client(live: Broker) -> None:
    async def go() -> None:
        async with AsyncClient(live.url, ADMIN) as c:
            out = await c.submit_many([job_body(f"a{i}") for i in range(4)], concurrency=2)
            assert all(isinstance(x, Job) for x in out)
            ids = [j.id async for j in c.iter_jobs(page_size=3)]
            assert sorted(ids) == sorted(x.id for x in out if isinstance(x, Job))
            first = out[0]
            assert isinstance(first, Job)
            assert (await c.cancel(first.id)).id == first.id
            with pytest.raises(ApiError) as exc:
                await c.job("j0000000000000000nope")
            assert exc.value.status == 404

    asyncio.run(go())


# ---- the retry rules, on canned answers (pure logic: what is retried and how long it waits)

def _canned(answers: list[httpx.Response], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    return httpx.MockTransport(handle)


def test_429_and_503_wait_what_retry_after_says(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("broker.client.time.sleep", slept.append)
    seen: list[httpx.Request] = []
    answers = [httpx.Response(429, headers={"Retry-After": "7"}, json={"type": "t", "title": "Too many",
                                                                        "status": 429, "detail": "slow down"}),
               httpx.Response(503, headers={"Retry-After": "2"}, json={"type": "t", "title": "Unavailable",
                                                                        "status": 503, "detail": "redis"}),
               httpx.Response(200, json=[])]
    with Client("http://broker", "t", transport=_canned(answers, seen)) as c:
        assert c.sites() == []
    assert slept == [7.0, 2.0] and len(seen) == 3
    # a long Retry-After is cut to the policy's cap; without one the wait doubles
    assert RetryPolicy(max_delay=30).delay(0, 3600) == 30
    assert [RetryPolicy(backoff=0.5).delay(n, None) for n in range(3)] == [0.5, 1.0, 2.0]


def test_a_refusal_is_not_retried_and_a_409_only_on_a_submission(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("broker.client.time.sleep", lambda s: None)
    seen: list[httpx.Request] = []
    conflict = {"type": "t", "title": "Conflict", "status": 409, "detail": "in progress"}
    answers = [httpx.Response(422, json={"type": "t", "title": "Validation failed", "status": 422, "detail": "no"}),
               httpx.Response(409, json=conflict)]
    with Client("http://broker", "t", transport=_canned(answers, seen)) as c:
        with pytest.raises(ApiError, match="422"):
            c.submit(job_body())
        with pytest.raises(ApiError, match="409"):
            c.revoke_token("x")  # a DELETE's 409 is an answer, not a wait
    assert len(seen) == 2
    answers = [httpx.Response(409, headers={"Retry-After": "1"}, json=conflict),
               httpx.Response(422, json={"type": "t", "title": "Validation failed", "status": 422, "detail": "x"})]
    seen.clear()
    with Client("http://broker", "t", transport=_canned(answers, seen)) as c, pytest.raises(ApiError, match="422"):
        c.submit(job_body())  # the 409 (the first try still being handled) was waited out
    assert len(seen) == 2 and seen[0].headers["Idempotency-Key"] == seen[1].headers["Idempotency-Key"]


def test_submit_many_sends_a_batchs_409_and_503_jobs_again_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch's job answered 409 (its key in flight) or 503 (not confirmed by replicas) is sent
    again with its own key, the others not; one that never gets a 202 keeps its last problem."""
    monkeypatch.setattr("broker.client.time.sleep", lambda _s: None)
    job = job_body("x")
    full = {"id": "j1", "project": "m1", "name": "x", "state": "NEW", "site": None, "system": None,
            "native_id": None, "native_state": None, "exit_code": None, "message": None,
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
            "placement": None, "attempts": [], "history": [], "spec": job["spec"]}

    def problem(status: int) -> dict[str, Any]:
        return {"type": "t", "title": "t", "status": status, "detail": f"said {status}"}

    answers = [
        httpx.Response(200, json={"accepted": 1, "refused": 2, "results": [
            {"index": 0, "status": 202, "job": {**full, "id": "a"}},
            {"index": 1, "status": 409, "problem": problem(409)},
            {"index": 2, "status": 503, "problem": problem(503)}]}),
        httpx.Response(200, json={"accepted": 1, "refused": 1, "results": [
            {"index": 0, "status": 202, "job": {**full, "id": "b"}},
            {"index": 1, "status": 503, "problem": problem(503)}]}),
        httpx.Response(200, json={"accepted": 0, "refused": 1, "results": [
            {"index": 0, "status": 503, "problem": problem(503)}]}),
    ]
    seen: list[httpx.Request] = []
    with Client("http://broker", "t", transport=_canned(answers, seen), retry=RetryPolicy(attempts=3)) as c:
        out = c.submit_many([job, job, job], keys=["k0", "k1", "k2"])
    sent = [[j["idempotency_key"] for j in json.loads(r.content)["jobs"]] for r in seen]
    assert sent == [["k0", "k1", "k2"], ["k1", "k2"], ["k2"]]
    assert [getattr(x, "id", None) for x in out[:2]] == ["a", "b"]
    assert isinstance(out[2], ApiError) and out[2].status == 503 and out[2].detail == "said 503"
