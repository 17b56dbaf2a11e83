"""POST /api/v1/jobs/batch over a real private Redis: each job accepted or refused on its own
(as the single POST would answer it), written whole with its RQ submission, idempotency keys
per job (replay, another body, a key twice in one batch, shared with the single POST), the size
limit, and one round trip to Redis for the batch."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import redis
from litestar.testing import TestClient
from rq.job import Job as RQJob

from broker.app import create_app
from broker.intake import BATCH_SCRIPT, IdemState
from broker.queues import SERIALIZER, SUBMIT, queue
from broker.schemas import MAX_BATCH
from broker.store import autopipe
from broker.store.keys import Keys
from tests.api.conftest import auth, settings_for

SPEC = {"executable": "/bin/true", "resources": {"node_count": 1}, "attributes": {"duration": 60}}
URL = "/api/v1/jobs/batch"
K = Keys()


@pytest.fixture
def bc(clean_redis: str) -> Iterator[tuple[TestClient, redis.Redis]]:
    r = redis.Redis.from_url(clean_redis, decode_responses=True)
    with TestClient(create_app(settings_for(clean_redis))) as c:
        yield c, r
    r.close()


def job(name: str, key: str | None = None, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"project": "m1", "spec": {**SPEC, "name": name}, **over}
    if key is not None:
        body["idempotency_key"] = key
    return body


def post(c: TestClient, jobs: list[Any], role: str = "submitter") -> Any:
    return c.post(URL, json={"jobs": jobs}, headers=auth(role))


def test_every_job_is_written_whole_with_its_submission(bc: tuple[TestClient, redis.Redis], clean_redis: str
                                                       ) -> None:
    c, r = bc
    resp = post(c, [job(f"j{i}") for i in range(5)])
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert (out["accepted"], out["refused"]) == (5, 0)
    ids = [x["job"]["id"] for x in out["results"]]
    assert [x["index"] for x in out["results"]] == list(range(5))
    assert [x["status"] for x in out["results"]] == [202] * 5
    assert [x["job"]["name"] for x in out["results"]] == [f"j{i}" for i in range(5)]
    assert len(set(ids)) == 5
    for jid in ids:
        assert r.hget(K.job(jid), "state") == "NEW"
        assert r.hget(K.job(jid), "owner") == "s"
        for index in (K.jobs_all, K.jobs_by_project("m1"), K.jobs_by_state("NEW")):
            assert r.zscore(index, jid) is not None, index
        assert c.get(f"/api/v1/jobs/{jid}", headers=auth("viewer")).json()["id"] == jid
    with redis.Redis.from_url(clean_redis) as raw:  # RQ reads bytes
        q = queue(raw, SUBMIT)
        assert sorted(q.job_ids) == sorted(f"submit-{j}" for j in ids)
        for jid in ids:  # each RQ job is its own (not the first job's, copied)
            rq = RQJob.fetch(f"submit-{jid}", connection=raw, serializer=SERIALIZER)
            assert rq.func_name == "broker.tasks.submit.run" and rq.args == [jid]
            assert rq.description == f"broker.tasks.submit.run({jid!r})"


def test_each_job_is_written_as_the_single_post_writes_it(bc: tuple[TestClient, redis.Redis]) -> None:
    """A batch writes only what differs per job per job (the record's own fields, the project's
    index): jobs of several projects, names, specs and hints each get their own, as one POST
    each would have written them."""
    c, r = bc
    bodies = [
        job("a", project="m1"),
        job("b", project="m2", spec={**SPEC, "name": "b", "arguments": ["-x", "1"]}),
        job("c", project="m1", placement={"site": "beta"}),
    ]
    out = post(c, bodies).json()
    assert out["accepted"] == 3, out
    ids = [x["job"]["id"] for x in out["results"]]
    singles = []
    for body in bodies:
        resp = c.post("/api/v1/jobs", json=body, headers=auth("submitter"))
        assert resp.status_code == 202, resp.text
        singles.append(resp.json()["id"])
    per_moment = {"id", "created", "created_us", "updated", "history"}
    for jid, single, body in zip(ids, singles, bodies, strict=True):
        mine, theirs = r.hgetall(K.job(jid)), r.hgetall(K.job(single))
        assert mine["id"] == jid and mine["project"] == body["project"]
        assert {k: v for k, v in mine.items() if k not in per_moment} == {
            k: v for k, v in theirs.items() if k not in per_moment}
        assert msgspec.json.decode(mine["history"])[0]["state"] == "NEW"
        assert r.zscore(K.jobs_by_project(body["project"]), jid) is not None
        other = "m2" if body["project"] == "m1" else "m1"
        assert r.zscore(K.jobs_by_project(other), jid) is None


def test_a_bad_job_is_refused_alone_with_the_single_posts_problem(bc: tuple[TestClient, redis.Redis]) -> None:
    c, r = bc
    jobs = [
        job("ok0"),
        {"project": "m1", "spec": {**SPEC, "resources": {"node_count": "two"}}},  # not a number
        job("big", spec={**SPEC, "resources": {"node_count": 64}}),  # more nodes than any site has
        job("other", project="m2"),  # the m1 token may not act for m2
        job("ok4"),
        {"project": "m1", "spec": SPEC, "colour": "red"},  # unknown field
        job("nosite", placement={"site": "nowhere"}),
    ]
    jobs[2]["spec"]["resources"] = {"node_count": 64}
    resp = post(c, jobs, role="m1-submitter")
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert (out["accepted"], out["refused"]) == (2, 5)
    res = out["results"]
    assert [x["status"] for x in res] == [202, 422, 422, 403, 202, 422, 422]
    assert res[1]["problem"]["errors"][0]["field"] == "spec.resources.node_count"
    assert "Expected `int" in res[1]["problem"]["detail"]
    assert "no site can take this job" in res[2]["problem"]["detail"]
    assert "m2" in res[3]["problem"]["detail"]
    assert "colour" in res[5]["problem"]["detail"]
    assert "nowhere" in res[6]["problem"]["detail"]
    for x in res:
        assert x["index"] == res.index(x)
        if x["status"] != 202:
            assert "job" not in x and x["problem"]["status"] == x["status"]
            assert x["problem"]["instance"] == URL
    # the single POST answers the same job the same way
    single = c.post("/api/v1/jobs", json=jobs[2], headers=auth("m1-submitter"))
    assert single.status_code == 422 and single.json()["detail"] == res[2]["problem"]["detail"]
    assert r.zcard(K.jobs_all) == 2 and r.llen("rq:queue:superfed-submit") == 2


def test_idempotency_keys_per_job(bc: tuple[TestClient, redis.Redis]) -> None:
    c, r = bc
    first = post(c, [job("a", "k-a"), job("b", "k-b"), job("c")]).json()
    again = post(c, [job("a", "k-a"), job("b-changed", "k-b"), job("c")]).json()
    assert [x["status"] for x in again["results"]] == [202, 422, 202]
    assert again["results"][0]["replayed"] is True and "replayed" not in first["results"][0]
    assert again["results"][0]["job"] == first["results"][0]["job"]
    assert again["results"][1]["problem"]["errors"][0]["field"] == "idempotency_key"
    assert again["results"][2]["job"]["id"] != first["results"][2]["job"]["id"]  # no key: a new job
    assert r.zcard(K.jobs_all) == 4  # a, b, c and the second c
    # the key is the single POST's too: its Idempotency-Key header replays the batch's answer
    single = c.post("/api/v1/jobs", json={"project": "m1", "spec": {**SPEC, "name": "a"}},
                    headers={**auth("submitter"), "Idempotency-Key": "k-a"})
    assert single.status_code == 202 and single.headers["Idempotent-Replayed"] == "true"
    assert single.json()["id"] == first["results"][0]["job"]["id"]
    # ... and a key the single POST answered replays in a batch
    s = c.post("/api/v1/jobs", json={"project": "m1", "spec": {**SPEC, "name": "d"}},
               headers={**auth("submitter"), "Idempotency-Key": "k-d"}).json()
    b = post(c, [job("d", "k-d")]).json()["results"][0]
    assert b["replayed"] is True and b["job"]["id"] == s["id"]
    assert r.llen("rq:queue:superfed-submit") == r.zcard(K.jobs_all) == 5


def test_a_key_twice_in_one_batch_is_one_job(bc: tuple[TestClient, redis.Redis]) -> None:
    c, r = bc
    out = post(c, [job("x", "k-x"), job("x", "k-x"), job("y", "k-x")]).json()
    res = out["results"]
    assert [x["status"] for x in res] == [202, 202, 422]
    assert res[1]["replayed"] is True and res[1]["job"]["id"] == res[0]["job"]["id"]
    assert r.zcard(K.jobs_all) == 1


def test_a_key_still_in_flight_is_that_jobs_409(bc: tuple[TestClient, redis.Redis]) -> None:
    c, r = bc
    # what an older broker left while it handled the key ("pending"); the body's fingerprint
    from broker.intake import fingerprint
    from broker.schemas import JobCreate

    fp = fingerprint(msgspec.convert({"project": "m1", "spec": {**SPEC, "name": "p"}}, JobCreate))
    tok = r.hget(K.tokens, hashlib.sha256(auth("submitter")["Authorization"][7:].encode()).hexdigest())
    owner = msgspec.json.decode(tok)["id"]
    r.set(K.idempotency(owner, "k-p"), msgspec.json.encode(IdemState(fp=fp, state="pending")))
    res = post(c, [job("p", "k-p"), job("q")]).json()["results"]
    assert [x["status"] for x in res] == [409, 202]
    assert "still being handled" in res[0]["problem"]["detail"]


def test_the_size_limit(bc: tuple[TestClient, redis.Redis]) -> None:
    c, r = bc
    too_many = post(c, [job("n")] * (MAX_BATCH + 1))
    assert too_many.status_code == 413
    assert too_many.headers["content-type"].startswith("application/problem+json")
    assert f"{MAX_BATCH + 1:,}" in too_many.json()["detail"] and "at most 1,000" in too_many.json()["detail"]
    empty = post(c, [])
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "jobs"
    not_a_list = c.post(URL, json={"jobs": {"a": 1}}, headers=auth("submitter"))
    assert not_a_list.status_code == 422 and not_a_list.json()["errors"][0]["field"] == "jobs"
    assert r.zcard(K.jobs_all) == 0


def test_a_viewer_may_not(bc: tuple[TestClient, redis.Redis]) -> None:
    c, r = bc
    assert post(c, [job("v")], role="viewer").status_code == 403
    assert c.post(URL, json={"jobs": [job("v")]}).status_code == 401
    assert r.zcard(K.jobs_all) == 0


def test_one_round_trip_for_the_whole_batch(bc: tuple[TestClient, redis.Redis], monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    c, r = bc
    post(c, [job("warm")])  # the caches the checks read (sites, accounts) are filled
    sent: list[list[Any]] = []
    real = autopipe.AutoPipeline._send

    async def counting(self: autopipe.AutoPipeline, batch: list[Any], *a: Any, **kw: Any) -> None:
        sent.append([cmd[1] if cmd[0] == "EVALSHA" else cmd[0] for e in batch for cmd in e.cmds])
        await real(self, batch, *a, **kw)

    monkeypatch.setattr(autopipe.AutoPipeline, "_send", counting)
    out = post(c, [job(f"n{i}", f"k{i}") for i in range(50)]).json()
    assert out["accepted"] == 50
    batch_sha = hashlib.sha1(BATCH_SCRIPT.encode()).hexdigest()
    assert sum(s.count(batch_sha) for s in sent) == 1, sent  # one call writes all 50
    assert not any(c in s for s in sent for c in ("HSET", "ZADD", "RPUSH", "SET", "MULTI")), sent
    assert r.zcard(K.jobs_all) == 51
