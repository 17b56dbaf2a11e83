"""Issue 11 (4), the project roots in detail: the files API ignored project scopes (a token of project B read an A job's
output and wrote into A's directories). File roots are per project now: a request names its
project, a token reaches only its own projects' roots, and every write is audited. The
facility is a real simulator (IRI) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from broker.app import create_app
from broker.config import validate
from simulators.common.facility import SimSettings
from simulators.iri import create_app as create_iri
from tests.support.servers import ThreadedServer

TOKENS = {"a": "tok-project-a-submitter-0000", "b": "tok-project-b-submitter-0000",
          "admin": "tok-admin-root-000000000", "viewer-b": "tok-project-b-viewer-000000"}
IRI_TOKEN = "iri-test-token-0000000000000000"


def _h(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


@pytest.fixture
def client(clean_redis: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SUPERFED_TEST_IRI_TOKEN", IRI_TOKEN)
    with ThreadedServer(create_iri(SimSettings(systems=["polaris"], static_tokens=[IRI_TOKEN]))) as iri:
        settings = validate({
            "redis_url": clean_redis,
            "tokens": [
                {"name": "a", "role": "submitter", "projects": ["pa"], "token": TOKENS["a"]},
                {"name": "b", "role": "submitter", "projects": ["pb"], "token": TOKENS["b"]},
                {"name": "vb", "role": "viewer", "projects": ["pb"], "token": TOKENS["viewer-b"]},
                {"name": "root", "role": "admin", "token": TOKENS["admin"]},
            ],
            "sites": [{"name": "alcf", "kind": "iri", "url": iri.url, "systems": ["polaris"],
                       "auth": {"token_env": "SUPERFED_TEST_IRI_TOKEN"},
                       "file_roots": {"pa": ["/eagle/m0001"], "pb": ["/eagle/m0002"], "*": ["/home/superfed"]}}],
        })
        with TestClient(create_app(settings)) as c:
            yield c


def _put(c: TestClient, who: str, project: str, path: str, body: bytes = b"x") -> Any:
    return c.put("/api/v1/sites/alcf/files/content", params={"path": path, "project": project}, content=body,
                 headers=_h(who))


def _get(c: TestClient, who: str, project: str, path: str) -> Any:
    return c.get("/api/v1/sites/alcf/files/content", params={"path": path, "project": project}, headers=_h(who))


def test_a_token_reaches_only_its_projects_roots(client: TestClient) -> None:
    assert _put(client, "a", "pa", "/eagle/m0001/out.txt", b"A's output").status_code == 204
    assert _get(client, "a", "pa", "/eagle/m0001/out.txt").content == b"A's output"
    # B cannot read or overwrite A's files: not by naming A's project, not through its own
    for project in ("pa", "pb"):
        for r in (_get(client, "b", project, "/eagle/m0001/out.txt"),
                  _put(client, "b", project, "/eagle/m0001/out.txt"),
                  client.get("/api/v1/sites/alcf/files", params={"path": "/eagle/m0001", "project": project},
                             headers=_h("b"))):
            assert r.status_code == 403, (project, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
    assert _get(client, "viewer-b", "pb", "/eagle/m0001/out.txt").status_code == 403
    assert _get(client, "a", "pa", "/eagle/m0001/out.txt").content == b"A's output"  # untouched
    # B works in its own root, and both in the shared one
    assert _put(client, "b", "pb", "/eagle/m0002/mine.txt").status_code == 204
    assert _put(client, "b", "pb", "/home/superfed/b.txt").status_code == 204
    assert _get(client, "a", "pa", "/home/superfed/b.txt").status_code == 200
    # an admin for every project may act for either
    assert _get(client, "admin", "pa", "/eagle/m0001/out.txt").status_code == 200


def test_the_project_is_required_and_checked(client: TestClient) -> None:
    r = client.get("/api/v1/sites/alcf/files", params={"path": "/eagle/m0001"}, headers=_h("a"))
    assert r.status_code == 400 and "project" in r.text
    r = client.get("/api/v1/sites/alcf/files", params={"path": "/eagle/m0001", "project": "pa\n"}, headers=_h("a"))
    assert r.status_code == 400
    r = client.get("/api/v1/sites/alcf/files", params={"path": "/eagle/m0001", "project": "pz"}, headers=_h("admin"))
    assert r.status_code == 403 and "project 'pz'" in r.json()["detail"]  # only the shared roots for it


def test_writes_and_cancels_are_audited(client: TestClient) -> None:
    assert _put(client, "a", "pa", "/eagle/m0001/in.txt", b"12345").status_code == 204
    items = client.get("/api/v1/audit", headers=_h("admin")).json()["items"]
    write = next(e for e in items if e["action"] == "file.write")
    assert write["actor"] == "a" and write["target"] == "alcf:/eagle/m0001/in.txt"
    assert write["after"] == {"site": "alcf", "path": "/eagle/m0001/in.txt", "project": "pa", "bytes": 5}
    job = client.post("/api/v1/jobs", json={"project": "pa", "spec": {"executable": "/bin/true"}}, headers=_h("a"))
    assert job.status_code == 202, job.text
    assert client.delete(f"/api/v1/jobs/{job.json()['id']}", headers=_h("a")).status_code == 202
    items = client.get("/api/v1/audit", headers=_h("admin")).json()["items"]
    cancel = next(e for e in items if e["action"] == "job.cancel")
    assert cancel["actor"] == "a" and cancel["target"] == job.json()["id"]
