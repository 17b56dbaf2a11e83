"""Site configuration at run time over a real Redis: create (422 names each bad field, 409),
ETag / If-Match (428, 412), delete only when idle (409), drain/enable seen by placement, the
audit log's contents, and the file roots."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import redis
from litestar.testing import TestClient

from broker.adapter_pool import AdapterPool
from broker.store.audit import REDACTED, redact
from broker.store.connect import async_client
from broker.store.keys import Keys
from broker.store.sites import SiteStore
from tests.api.conftest import auth, settings_for

GAMMA = {"name": "gamma", "kind": "iri", "url": "http://127.0.0.1:9/api/v1", "systems": ["polaris"],
         "auth": {"token_credential": "gamma-token"}, "limits": {"max_nodes": 8}}
SPEC = {"executable": "/bin/true", "resources": {"node_count": 1}, "attributes": {"duration": 600}}


def _create(client: TestClient, body: dict | None = None):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/sites", json=body or GAMMA, headers=auth("admin"))


def test_create_then_read_with_etag(client: TestClient) -> None:
    r = _create(client)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/api/v1/sites/gamma" and r.headers["etag"] == '"1"'
    assert r.json()["name"] == "gamma" and r.json()["revision"] == 1
    got = client.get("/api/v1/sites/gamma", headers=auth("viewer"))
    assert got.status_code == 200 and got.headers["etag"] == '"1"'
    assert "gamma-token" not in got.text  # viewers do not even see which credentials it uses
    assert "gamma" in [s["name"] for s in client.get("/api/v1/sites", headers=auth("viewer")).json()]
    cfg = client.get("/api/v1/sites/gamma/config", headers=auth("admin"))
    assert cfg.status_code == 200 and cfg.headers["etag"] == '"1"'
    assert cfg.json()["config"]["auth"] == {"token_credential": "gamma-token"} and cfg.json()["revision"] == 1
    again = _create(client)
    assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")


def test_create_names_each_bad_field(client: TestClient) -> None:
    body = {"name": "Gamma!", "kind": "iri", "url": "ftp://example.org", "systems": [], "weight": "heavy",
            "auth": {"token_credential": "gamma-token"}, "colour": "blue"}
    r = _create(client, body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"name", "url", "systems", "weight", "colour"} <= fields, fields
    for case, field in [
        ({**GAMMA, "url": "http://user:pw@example.org"}, "url"),  # credentials never in a URL
        ({**GAMMA, "url": "javascript:alert(1)"}, "url"),
        ({**GAMMA, "auth": {"token": "the-secret-itself"}}, "auth"),  # secrets only by file/env name
        ({**GAMMA, "file_roots": {"m1": ["relative/path"]}}, "file_roots"),
        ({**GAMMA, "file_roots": {"m1": ["/home/../etc"]}}, "file_roots"),
        ({**GAMMA, "file_roots": ["/home"]}, "file_roots"),  # the old form: every project everywhere
        ({**GAMMA, "systems": ["a", "a"]}, "systems"),
    ]:
        r = _create(client, case)
        assert r.status_code == 422, (case, r.text)
        assert any(e["field"].startswith(field) for e in r.json()["errors"]), (field, r.text)
        assert "pw@" not in r.text and "the-secret-itself" not in r.text
    assert client.post("/api/v1/sites", json=[1, 2], headers=auth("admin")).status_code in (400, 422)
    assert client.get("/api/v1/sites/gamma", headers=auth("viewer")).status_code == 404  # nothing half-written


def test_replace_needs_the_current_etag(client: TestClient) -> None:
    _create(client)
    new = {**GAMMA, "weight": 5.0}
    r = client.put("/api/v1/sites/gamma", json=new, headers=auth("admin"))
    assert r.status_code == 428 and r.headers["etag"] == '"1"'
    r = client.put("/api/v1/sites/gamma", json=new, headers={**auth("admin"), "If-Match": '"7"'})
    assert r.status_code == 412 and r.headers["etag"] == '"1"'
    r = client.put("/api/v1/sites/gamma", json=new, headers={**auth("admin"), "If-Match": 'W/"1"'})
    assert r.status_code == 412  # weak tags never match If-Match
    r = client.put("/api/v1/sites/gamma", json=new, headers={**auth("admin"), "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"2"' and r.json()["weight"] == 5.0
    # the second writer with the old ETag loses
    r = client.put("/api/v1/sites/gamma", json={**GAMMA, "weight": 6.0}, headers={**auth("admin"), "If-Match": '"1"'})
    assert r.status_code == 412
    assert client.get("/api/v1/sites/gamma", headers=auth("viewer")).json()["weight"] == 5.0
    # invalid replacement: 422, nothing changes
    r = client.put("/api/v1/sites/gamma", json={**GAMMA, "weight": -1}, headers={**auth("admin"), "If-Match": '"2"'})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "weight"
    r = client.put("/api/v1/sites/gamma", json={**GAMMA, "name": "delta"}, headers={**auth("admin"), "If-Match": '"2"'})
    assert r.status_code == 422 and "renamed" in r.text
    assert client.get("/api/v1/sites/gamma", headers=auth("viewer")).headers["etag"] == '"2"'
    r = client.put("/api/v1/sites/nowhere", json=GAMMA, headers={**auth("admin"), "If-Match": '"1"'})
    assert r.status_code == 404


def test_delete_only_without_unfinished_jobs(client: TestClient, clean_redis: str) -> None:
    _create(client)
    r_ = redis.Redis.from_url(clean_redis)
    r_.hset("superfed:assigned:gamma", "job-1", "1")
    r = client.delete("/api/v1/sites/gamma", headers=auth("admin"))
    assert r.status_code == 409 and "unfinished" in r.json()["detail"]
    r_.hdel("superfed:assigned:gamma", "job-1")
    r_.hset("superfed:active:gamma", "job-2", "polaris|123")
    assert client.delete("/api/v1/sites/gamma", headers=auth("admin")).status_code == 409
    r_.hdel("superfed:active:gamma", "job-2")
    assert client.delete("/api/v1/sites/gamma", headers={**auth("admin"), "If-Match": '"9"'}).status_code == 412
    assert client.delete("/api/v1/sites/gamma", headers=auth("admin")).status_code == 204
    assert client.get("/api/v1/sites/gamma", headers=auth("viewer")).status_code == 404
    assert client.delete("/api/v1/sites/gamma", headers=auth("admin")).status_code == 404


def test_drain_and_enable_steer_placement(client: TestClient) -> None:
    def ranking() -> dict[str, dict]:
        r = client.post("/api/v1/placement", json={"project": "m1", "spec": SPEC}, headers=auth("submitter"))
        assert r.status_code == 200, r.text
        return {x["site"]: x for x in r.json()["ranking"]}

    assert not any("draining" in why for why in ranking()["alpha"]["reasons"])
    r = client.post("/api/v1/sites/alpha/drain", headers=auth("admin"))
    assert r.status_code == 200 and r.json()["draining"] is True and r.headers["etag"] == '"2"'
    alpha = ranking()["alpha"]
    assert not alpha["eligible"] and any("draining" in why for why in alpha["reasons"])
    again = client.post("/api/v1/sites/alpha/drain", headers=auth("admin"))  # already draining: no new revision
    assert again.status_code == 200 and again.headers["etag"] == '"2"'
    r = client.post("/api/v1/sites/alpha/enable", headers=auth("admin"))
    assert r.status_code == 200 and r.json()["draining"] is False and r.json()["enabled"] is True
    assert not any("draining" in why for why in ranking()["alpha"]["reasons"])
    assert client.post("/api/v1/sites/nowhere/drain", headers=auth("admin")).status_code == 404


def test_audit_log_says_who_what_when_before_after(client: TestClient) -> None:
    t0 = time.time()
    _create(client)
    client.put("/api/v1/sites/gamma", json={**GAMMA, "weight": 2.0}, headers={**auth("admin"), "If-Match": '"1"'})
    client.post("/api/v1/sites/gamma/drain", headers=auth("admin"))
    client.post("/api/v1/sites/gamma/enable", headers=auth("admin"))
    made = client.post("/api/v1/tokens", json={"name": "ops", "role": "viewer"}, headers=auth("admin")).json()
    client.delete(f"/api/v1/tokens/{made['id']}", headers=auth("admin"))
    client.delete("/api/v1/sites/gamma", headers=auth("admin"))
    _create(client, {**GAMMA, "weight": -5})  # refused: not audited
    r = client.get("/api/v1/audit", headers=auth("admin"))
    assert r.status_code == 200
    page = r.json()
    items = page["items"]
    assert [e["action"] for e in items] == ["site.delete", "token.revoke", "token.create", "site.enable",
                                          "site.drain", "site.replace", "site.create"]
    assert page["total"] == 7
    assert all(e["actor"] == "a" for e in items)  # the admin token's name
    create, replace = items[-1], items[-2]
    assert create["before"] is None and create["after"]["name"] == "gamma"
    assert replace["before"]["weight"] == 1.0 and replace["after"]["weight"] == 2.0
    assert replace["after"]["auth"] == {"token_credential": "gamma-token"}  # credential names: kept
    assert items[0]["before"]["name"] == "gamma" and items[0]["after"] is None
    assert items[2]["target"] == made["id"] and made["token"] not in r.text
    for e in items:
        assert t0 - 1 <= datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp() <= time.time() + 1
    assert client.get("/api/v1/audit", params={"limit": 2}, headers=auth("admin")).json()["items"] == items[:2]
    later = client.get("/api/v1/audit", params={"limit": 2, "offset": 5}, headers=auth("admin"))
    assert later.json()["items"] == items[5:]
    assert client.get("/api/v1/audit", headers=auth("submitter")).status_code == 403


def test_redaction() -> None:
    raw = {"name": "s", "url": "https://user:hunter2@example.org/x",
           "auth": {"client_id": "c", "client_secret": "hunter2", "private_key_env": "KEY_VAR",
                    "client_secret_file": "/etc/s", "token": "hunter2", "token_url": "https://t/token",
                    "password": "hunter2", "api_key": "hunter2", "key": "hunter2"},
           "nested": [{"refresh_token": "hunter2"}]}
    out = redact(raw)
    assert "hunter2" not in repr(out)
    assert out["auth"]["private_key_env"] == "KEY_VAR" and out["auth"]["client_secret_file"] == "/etc/s"
    assert out["auth"]["token_url"] == "https://t/token" and out["auth"]["client_id"] == "c"
    assert out["auth"]["client_secret"] == REDACTED and out["nested"][0]["refresh_token"] == REDACTED
    assert out["url"] == f"https://user:{REDACTED}@example.org/x"


def test_file_paths_stay_under_the_roots(client: TestClient) -> None:
    # alpha has no file_roots: no file access at all
    r = client.get("/api/v1/sites/alpha/files", params={"path": "/home", "project": "m1"}, headers=auth("viewer"))
    assert r.status_code == 403 and "file_roots" in r.text
    _create(client, {**GAMMA, "file_roots": {"m1": ["/home/users/", "/scratch"]}})
    for path, status in [("/etc/passwd", 403), ("/home/users/../../etc/passwd", 400), ("relative", 400),
                         ("/home/usersx/a", 403), ("/scratch/../etc", 400), ("/home", 403)]:
        for op in ("files", "files/content"):
            r = client.get(f"/api/v1/sites/gamma/{op}", params={"path": path, "project": "m1"}, headers=auth("viewer"))
            assert r.status_code == status, (path, op, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        w = client.put("/api/v1/sites/gamma/files/content", params={"path": path, "project": "m1"}, content=b"x",
                       headers=auth("submitter"))
        assert w.status_code == status, (path, w.text)
    # inside a root the request goes to the facility (here: nothing listens, so 503, never 500)
    for path in ("/home/users/me", "//scratch//a/./b", "/scratch"):
        r = client.get("/api/v1/sites/gamma/files", params={"path": path, "project": "m1"}, headers=auth("viewer"))
        assert r.status_code in (502, 503), (path, r.text)


def test_workers_rebuild_the_adapter_when_the_revision_changes(client: TestClient, clean_redis: str) -> None:
    _create(client)

    async def adapter_url() -> str:
        r = async_client(clean_redis)
        pool = AdapterPool(SiteStore(r, Keys()), credentials=settings_for(clean_redis).credentials)
        try:
            found = await pool.by_name("gamma")
            assert found is not None
            return str(found[1].url)
        finally:
            await pool.aclose()
            await r.aclose()

    # the IRI adapter keeps the server's URL; the /api/v1 it ends with is its version
    assert asyncio.run(adapter_url()) == "http://127.0.0.1:9"
    client.put("/api/v1/sites/gamma", json={**GAMMA, "url": "http://127.0.0.1:7/api/v1"},
               headers={**auth("admin"), "If-Match": '"1"'})
    assert asyncio.run(adapter_url()) == "http://127.0.0.1:7"
