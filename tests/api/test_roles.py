"""The role x route table, every cell: no token, a bad token, viewer, submitter and admin on
every operation in ROUTE_ROLES, over real HTTP with a private Redis; then the project scope rule
(another project's job is a 404, not a hint) and fail-closed for a route with no entry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from litestar import get
from litestar.routes import HTTPRoute

from broker.api.auth import ROUTE_ROLES
from broker.app import create_app
from broker.config import validate
from tests.api.conftest import TOKENS
from tests.support.servers import ThreadedServer

# What API.md says each operation needs: the test's own copy, so that a wrong entry in
# ROUTE_ROLES fails here instead of being trusted.
EXPECTED: dict[str, str] = {
    "listSites": "viewer",
    "getSite": "viewer",
    "getStatus": "viewer",
    "getSiteStatus": "viewer",
    "streamStatusEvents": "viewer",
    "getOverview": "viewer",
    "listJobs": "viewer",
    "getJob": "viewer",
    "createJob": "submitter",
    "createJobs": "submitter",
    "cancelJob": "submitter",
    "previewPlacement": "submitter",
    "listFiles": "viewer",
    "readFile": "viewer",
    "writeFile": "submitter",
    "listProjects": "viewer",
    "getUsage": "viewer",
    "createSite": "admin",
    "getSiteConfig": "admin",
    "replaceSite": "admin",
    "deleteSite": "admin",
    "drainSite": "admin",
    "enableSite": "admin",
    "listAudit": "admin",
    "createToken": "admin",
    "listTokens": "admin",
    "revokeToken": "admin",
}
RANK = {"viewer": 0, "submitter": 1, "admin": 2}
SPEC = {"executable": "/bin/true", "resources": {"node_count": 1}, "attributes": {"duration": 600}}
CLOSED = "http://127.0.0.1:9"  # nothing listens on the discard port: facility calls fail fast

# one request per operation: method, path, extra httpx arguments ({job} = a job of project m1)
SAMPLES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "listSites": ("GET", "/api/v1/sites", {}),
    "getSite": ("GET", "/api/v1/sites/alpha", {}),
    "getStatus": ("GET", "/api/v1/status", {}),
    "getSiteStatus": ("GET", "/api/v1/status/alpha", {}),
    "streamStatusEvents": ("GET", "/api/v1/status/events", {}),
    "getOverview": ("GET", "/api/v1/overview", {}),
    "listJobs": ("GET", "/api/v1/jobs", {}),
    "getJob": ("GET", "/api/v1/jobs/{job}", {}),
    "createJob": ("POST", "/api/v1/jobs", {"json": {"project": "m1", "spec": SPEC}}),
    "createJobs": ("POST", "/api/v1/jobs/batch", {"json": {"jobs": [{"project": "m1", "spec": SPEC}]}}),
    "cancelJob": ("DELETE", "/api/v1/jobs/{job}", {}),
    "previewPlacement": ("POST", "/api/v1/placement", {"json": {"project": "m1", "spec": SPEC}}),
    "listFiles": ("GET", "/api/v1/sites/alpha/files", {"params": {"path": "/home/u", "project": "m1"}}),
    "readFile": ("GET", "/api/v1/sites/alpha/files/content", {"params": {"path": "/home/u/x", "project": "m1"}}),
    "writeFile": ("PUT", "/api/v1/sites/alpha/files/content",
                  {"params": {"path": "/home/u/x", "project": "m1"}, "content": b"hi"}),
    "listProjects": ("GET", "/api/v1/projects", {}),
    "getUsage": ("GET", "/api/v1/usage", {}),
    "createSite": ("POST", "/api/v1/sites", {"json": {"name": "Bad Name"}}),
    "getSiteConfig": ("GET", "/api/v1/sites/alpha/config", {}),
    "replaceSite": ("PUT", "/api/v1/sites/alpha", {"json": {"kind": "iri"}}),  # no If-Match: 428
    "deleteSite": ("DELETE", "/api/v1/sites/nowhere", {}),
    "drainSite": ("POST", "/api/v1/sites/beta/drain", {}),
    "enableSite": ("POST", "/api/v1/sites/beta/enable", {}),
    "listAudit": ("GET", "/api/v1/audit", {}),
    "createToken": ("POST", "/api/v1/tokens", {"json": {"name": "made-by-role-test", "role": "viewer"}}),
    "listTokens": ("GET", "/api/v1/tokens", {}),
    "revokeToken": ("DELETE", "/api/v1/tokens/tok-000000000000", {}),
}
CALLERS = ("none", "bad", "viewer", "submitter", "admin")


def _settings(redis_url: str):  # type: ignore[no-untyped-def]
    site = {"kind": "sfapi", "url": f"{CLOSED}/api/v1.2", "systems": ["perlmutter"], "file_roots": {"m1": ["/home"]},
            "auth": {"client_id": "abcdefghijklm", "private_key_env": "SUPERFED_TEST_UNSET"}}
    return validate({
        "redis_url": redis_url,
        # the table makes ~50 unauthenticated calls from one address within a minute; the
        # per-address throttle of failed authentications has its own test (test_auth_failures)
        "api": {"auth_failures_per_minute": 0},
        "tokens": [
            {"name": "v", "role": "viewer", "token": TOKENS["viewer"]},
            {"name": "s", "role": "submitter", "token": TOKENS["submitter"]},
            {"name": "a", "role": "admin", "token": TOKENS["admin"]},
            {"name": "s1", "role": "submitter", "projects": ["m1"], "token": TOKENS["m1-submitter"]},
        ],
        "sites": [{"name": "alpha", **site}, {"name": "beta", **site}],
    })


@pytest.fixture(scope="module")
def api(redis_url: str) -> Iterator[str]:
    r = redis.Redis.from_url(redis_url)
    r.flushall()
    r.close()
    with ThreadedServer(create_app(_settings(redis_url))) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def job_id(api: str) -> str:
    r = httpx.post(f"{api}/api/v1/jobs", json={"project": "m1", "spec": SPEC},
                   headers={"Authorization": f"Bearer {TOKENS['admin']}"})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _headers(caller: str) -> dict[str, str]:
    if caller == "none":
        return {}
    if caller == "bad":
        return {"Authorization": "Bearer sf_not-a-token-anyone-was-given"}
    return {"Authorization": f"Bearer {TOKENS[caller]}"}


def _call(api: str, op: str, headers: dict[str, str], job: str, **override: Any) -> httpx.Response:
    method, path, kw = SAMPLES[op]
    kw = {**kw, **override}
    url = api + path.format(job=job)
    if op == "streamStatusEvents":  # an endless stream: read the status line and hang up
        with httpx.stream(method, url, headers=headers, timeout=10, **kw) as r:
            r.close()
            return r
    return httpx.request(method, url, headers=headers, timeout=20, **kw)


def test_route_roles_is_the_documented_table() -> None:
    assert ROUTE_ROLES == EXPECTED
    assert set(SAMPLES) == set(ROUTE_ROLES)


def test_every_api_route_has_an_entry() -> None:
    app = create_app(validate({}))
    seen = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/api/"):
            continue
        for handler in route.route_handlers:
            if handler.http_methods == {"OPTIONS"}:
                continue  # Litestar's automatic CORS preflight answer
            assert handler.operation_id in ROUTE_ROLES, f"{route.path} {handler.http_methods} has no role"
            seen.add(handler.operation_id)
    assert seen == set(ROUTE_ROLES)
    schema_ops = {op["operationId"] for path, item in app.openapi_schema.to_schema()["paths"].items()
                  if path.startswith("/api/") for op in item.values() if isinstance(op, dict) and "operationId" in op}
    assert schema_ops == set(ROUTE_ROLES)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("op", sorted(EXPECTED))
def test_cell(api: str, job_id: str, op: str, caller: str) -> None:
    r = _call(api, op, _headers(caller), job_id)
    if caller in ("none", "bad"):
        expected = 401
    elif RANK[caller] < RANK[EXPECTED[op]]:
        expected = 403
    else:
        expected = None
    if expected is not None:
        assert r.status_code == expected, (op, caller, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json")
        if expected == 401:
            assert r.headers["www-authenticate"].startswith("Bearer")
    else:
        assert r.status_code not in (401, 403), (op, caller, r.status_code, r.text)
        assert r.status_code < 500 or r.status_code in (502, 503), (op, caller, r.status_code, r.text)


def test_project_scope(api: str, job_id: str) -> None:
    s1 = _headers("m1-submitter")
    admin = _headers("admin")
    other = httpx.post(f"{api}/api/v1/jobs", json={"project": "m2", "spec": SPEC}, headers=admin).json()["id"]
    # acting for another project: 403 (the project is the client's own input, so no secret is told)
    for op in ("createJob", "previewPlacement"):
        r = _call(api, op, s1, job_id, json={"project": "m2", "spec": SPEC})
        assert r.status_code == 403, (op, r.text)
        assert _call(api, op, s1, job_id).status_code in (200, 202)
    # in a batch, that job's own 403 (the batch's other jobs are accepted)
    r = _call(api, "createJobs", s1, job_id, json={"jobs": [{"project": "m2", "spec": SPEC},
                                                            {"project": "m1", "spec": SPEC}]})
    assert [x["status"] for x in r.json()["results"]] == [403, 202], r.text
    # another project's job: 404 whether or not it exists
    for op in ("getJob", "cancelJob"):
        assert _call(api, op, s1, other).status_code == 404, op
        assert _call(api, op, s1, "no-such-job").status_code == 404, op
        assert _call(api, op, s1, job_id).status_code in (200, 202), op
    listed = httpx.get(f"{api}/api/v1/jobs", headers=s1).json()["items"]
    assert listed and {j["project"] for j in listed} == {"m1"}
    assert httpx.get(f"{api}/api/v1/jobs", params={"project": "m2"}, headers=s1).json()["items"] == []
    # a viewer scoped to m1, made through the API: sees m1's job, not m2's
    made = httpx.post(f"{api}/api/v1/tokens", json={"name": "v-m1", "role": "viewer", "projects": ["m1"]},
                      headers=admin).json()
    v1 = {"Authorization": f"Bearer {made['token']}"}
    assert httpx.get(f"{api}/api/v1/jobs/{job_id}", headers=v1).status_code == 200
    assert httpx.get(f"{api}/api/v1/jobs/{other}", headers=v1).status_code == 404
    assert httpx.post(f"{api}/api/v1/jobs", json={"project": "m1", "spec": SPEC}, headers=v1).status_code == 403


def test_a_route_without_an_entry_is_refused(clean_redis: str) -> None:
    from litestar.testing import TestClient

    @get("/api/v1/unlisted", operation_id="unlistedRoute")
    async def unlisted() -> dict[str, str]:
        return {"secret": "should never be served"}

    app = create_app(_settings(clean_redis))
    app.register(unlisted)
    with TestClient(app) as c:
        r = c.get("/api/v1/unlisted", headers=_headers("admin"))
        assert (r.status_code, r.json()["detail"]) == (403, "this route has no role assigned")
