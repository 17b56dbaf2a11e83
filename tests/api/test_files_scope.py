"""The files routes and project scopes, through the API against a real IRI simulator on
loopback: a token of project B must not read an A job's output nor write into A's
directories (issue 11, finding 4). A token of A itself, and an all-projects token, may."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from broker.app import create_app
from broker.config import validate
from simulators.common.facility import SimSettings
from simulators.iri import create_app as iri_app
from tests.support.servers import ThreadedServer

SIM_TOKEN = "iri-files-scope-token"
TOKENS = {"all": "tok-files-all-0000000", "a": "tok-files-proj-a-00000", "b": "tok-files-proj-b-00000"}
A_DIR = "/home/superfed/m-a/run1"  # where project A's job writes its output


def bearer(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


@pytest.fixture
def files_client(clean_redis: str, tmp_path: Path) -> Iterator[TestClient]:
    token_file = tmp_path / "iri.token"
    token_file.write_text(SIM_TOKEN)
    app = iri_app(SimSettings(systems=["polaris"], static_tokens=[SIM_TOKEN]))
    app.state.facility.fs.mkdir(A_DIR, parents=True)  # the job's directory, as the facility has it
    with ThreadedServer(app) as sim:
        settings = validate({
            "redis_url": clean_redis,
            "tokens": [
                {"name": "all", "role": "submitter", "token": TOKENS["all"]},
                {"name": "a", "role": "submitter", "projects": ["m-a"], "token": TOKENS["a"]},
                {"name": "b", "role": "submitter", "projects": ["m-b"], "token": TOKENS["b"]},
            ],
            "sites": [{"name": "alcf", "kind": "iri", "url": sim.url, "systems": ["polaris"],
                       "file_roots": {"m-a": ["/home/superfed/m-a"], "m-b": ["/home/superfed/m-b"]},
                       "http": {"retries": 0},
                       "auth": {"token_file": str(token_file)}}],
        })
        with TestClient(create_app(settings)) as c:
            yield c


def _put(c: TestClient, who: str, path: str, data: bytes, project: str = "m-a") -> int:
    r = c.put("/api/v1/sites/alcf/files/content", params={"path": path, "project": project}, content=data,
              headers=bearer(who))
    return r.status_code


def test_project_a_reaches_its_own_files(files_client: TestClient) -> None:
    c = files_client
    assert _put(c, "a", f"{A_DIR}/out.txt", b"A's results") == 204
    r = c.get("/api/v1/sites/alcf/files/content", params={"path": f"{A_DIR}/out.txt", "project": "m-a"},
              headers=bearer("a"))
    assert r.status_code == 200 and r.content == b"A's results"


def test_a_token_of_project_b_cannot_read_or_write_an_a_jobs_files(files_client: TestClient) -> None:
    c = files_client
    assert _put(c, "a", f"{A_DIR}/out.txt", b"A's results") == 204
    job = c.post("/api/v1/jobs", headers=bearer("a"), json={
        "project": "m-a",
        "spec": {"executable": "/bin/true", "directory": A_DIR, "stdout_path": f"{A_DIR}/out.txt",
                 "resources": {"node_count": 1}},
    })
    assert job.status_code == 202, job.text
    for project in ("m-a", "m-b"):  # naming A's project, or its own
        q = {"path": f"{A_DIR}/out.txt", "project": project}
        read = c.get("/api/v1/sites/alcf/files/content", params=q, headers=bearer("b"))
        listed = c.get("/api/v1/sites/alcf/files", params={**q, "path": A_DIR}, headers=bearer("b"))
        wrote = _put(c, "b", f"{A_DIR}/out.txt", b"B was here", project)
        assert read.status_code in (403, 404), read.text
        assert listed.status_code in (403, 404), listed.text
        assert wrote in (403, 404)
    # and nothing B tried changed A's file
    again = c.get("/api/v1/sites/alcf/files/content", params={"path": f"{A_DIR}/out.txt", "project": "m-a"},
                  headers=bearer("all"))
    assert again.content == b"A's results"
