"""POST/GET/LIST/DELETE /api/v1/jobs against a real Redis: what a client depends on."""

from __future__ import annotations

import redis
from litestar.testing import TestClient

from tests.api.conftest import auth

SPEC = {"executable": "/bin/sleep", "arguments": ["1"], "resources": {"node_count": 1}, "attributes": {"duration": 600}}


def test_create_then_read(client: TestClient, clean_redis: str) -> None:
    r = client.post("/api/v1/jobs", json={"project": "m1", "spec": SPEC}, headers=auth("submitter"))
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "NEW" and job["project"] == "m1" and job["history"][0]["state"] == "NEW"
    got = client.get(f"/api/v1/jobs/{job['id']}", headers=auth("viewer")).json()
    assert got["id"] == job["id"] and got["spec"]["executable"] == "/bin/sleep"
    # the submission is enqueued on RQ in the same transaction
    rq = redis.Redis.from_url(clean_redis)
    assert rq.lrange("rq:queue:superfed-submit", 0, -1) == [f"submit-{job['id']}".encode()]


def test_bad_input_names_the_problem(client: TestClient) -> None:
    cases = [
        ({"project": "m1", "spec": {**SPEC, "bogus": 1}}, "bogus"),
        ({"project": "m1", "spec": {**SPEC, "resources": {"node_count": -2}}}, "node_count"),
        ({"project": "m1", "spec": {**SPEC, "resources": {"node_count": "two"}}}, "node_count"),
        ({"project": "m1", "spec": SPEC, "placement": {"site": "nowhere"}}, "nowhere"),
        ({"project": "m1", "spec": {**SPEC, "attributes": {"duration": 99999}}}, "duration"),
        ({"project": "m1", "spec": {**SPEC, "resources": {"node_count": 64}}}, "nodes"),
        ({"spec": SPEC}, "project"),
    ]
    for body, word in cases:
        r = client.post("/api/v1/jobs", json=body, headers=auth("submitter"))
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        p = r.json()
        assert {"type", "title", "status", "detail"} <= p.keys()
        assert word in r.text, (word, r.text)
    assert client.get("/api/v1/jobs", headers=auth("viewer")).json()["items"] == []  # nothing half-written


def test_auth_and_roles(client: TestClient) -> None:
    body = {"project": "m1", "spec": SPEC}
    assert client.post("/api/v1/jobs", json=body).status_code == 401
    assert client.post("/api/v1/jobs", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/api/v1/jobs", json=body, headers=auth("viewer")).status_code == 403
    assert client.post("/api/v1/jobs", json={**body, "project": "m2"}, headers=auth("m1-submitter")).status_code == 403
    jid = client.post("/api/v1/jobs", json={**body, "project": "m2"}, headers=auth("submitter")).json()["id"]
    # another project's job: 404, not a hint that it exists
    assert client.get(f"/api/v1/jobs/{jid}", headers=auth("m1-submitter")).status_code == 404
    assert client.delete(f"/api/v1/jobs/{jid}", headers=auth("m1-submitter")).status_code == 404


def test_idempotency_key(client: TestClient) -> None:
    body = {"project": "m1", "spec": SPEC}
    h = {**auth("submitter"), "Idempotency-Key": "k-1"}
    first = client.post("/api/v1/jobs", json=body, headers=h)
    again = client.post("/api/v1/jobs", json=body, headers=h)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = client.post("/api/v1/jobs", json={**body, "project": "m2"}, headers=h)
    assert other.status_code == 422 and "different body" in other.text
    assert len(client.get("/api/v1/jobs", headers=auth("viewer")).json()["items"]) == 1


def test_list_pagination_newest_first(client: TestClient) -> None:
    ids = [client.post("/api/v1/jobs", json={"project": "m1" if i % 2 else "m2", "spec": SPEC},
                       headers=auth("submitter")).json()["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/jobs", params=params, headers=auth("viewer")).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    m1 = client.get("/api/v1/jobs", params={"project": "m1"}, headers=auth("viewer")).json()["items"]
    assert [j["id"] for j in m1] == [i for i in reversed(ids) if ids.index(i) % 2]
    assert client.get("/api/v1/jobs", params={"cursor": "garbage!"}, headers=auth("viewer")).status_code == 400
    assert client.get("/api/v1/jobs", params={"state": "WRONG"}, headers=auth("viewer")).status_code == 400


def test_cancel_new_and_final(client: TestClient) -> None:
    jid = client.post("/api/v1/jobs", json={"project": "m1", "spec": SPEC}, headers=auth("submitter")).json()["id"]
    r = client.delete(f"/api/v1/jobs/{jid}", headers=auth("submitter"))
    assert r.status_code == 202 and "cancel requested" in r.json()["detail"]
    assert client.delete("/api/v1/jobs/nope", headers=auth("submitter")).status_code == 404


def test_placement_preview_explains(client: TestClient) -> None:
    r = client.post("/api/v1/placement", json={"project": "m1", "spec": {**SPEC, "resources": {"node_count": 20}}},
                    headers=auth("submitter"))
    assert r.status_code == 200, r.text
    rank = {x["site"]: x for x in r.json()["ranking"]}
    assert set(rank) == {"alpha", "beta"}
    assert not rank["alpha"]["eligible"] and any("20 nodes" in why for why in rank["alpha"]["reasons"])
    assert any("never checked" in why or "unknown" in why for why in rank["beta"]["reasons"])


def test_operations_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert "superfed_jobs" in client.get("/metrics").text
    schema = client.get("/schema/openapi.json").json()
    assert "/api/v1/jobs" in schema["paths"]
    docs = client.get("/schema")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower() and "/schema/assets/" in docs.text
    assert client.get("/schema/assets/swagger-ui-bundle.js").status_code == 200
