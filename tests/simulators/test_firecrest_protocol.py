"""The FirecREST v2 simulator's error shapes, tokens, outages and chaos, over real HTTP, with
every protocol response validated against the v2 OpenAPI spec."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from simulators.common.facility import SimSettings
from simulators.firecrest import create_app
from tests.support.openapi import ValidatingASGI, load_spec
from tests.support.servers import ThreadedServer

CLIENT_ID, SECRET, USER = "cid", "csecret", "bob"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, ValidatingASGI]]:
    settings = SimSettings(enforce_policy=False,
        systems=["daint", "eiger"],
        nodes=4,
        time_scale=0.01,
        user=USER,
        client_id=CLIENT_ID,
        client_secret=SECRET,
    )
    wrapper = ValidatingASGI(
        create_app(settings),
        load_spec("firecrest-v2/openapi-latest.yaml"),
        skip_prefixes=("/_sim", "/auth/token"),
    )
    with ThreadedServer(wrapper) as srv:
        yield srv.url, wrapper
    assert wrapper.errors == []
    assert wrapper.validated > 0


@pytest.fixture
def http(server: tuple[str, ValidatingASGI]) -> Iterator[httpx.Client]:
    url = server[0]
    with httpx.Client(base_url=url, timeout=10) as c:
        c.post("/_sim/reset").raise_for_status()
        tok = c.post(
            "/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
            },
        ).json()["access_token"]
        c.headers["Authorization"] = f"Bearer {tok}"
        yield c


def assert_error(
    resp: httpx.Response, status: int, message: str | None = None, etype: str = "error"
) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"errorType", "message", "causedBy", "data", "user"}
    assert body["errorType"] == etype
    if message is not None:
        assert message in body["message"]
    return body


def submit(http: httpx.Client, script: str, **job: object) -> httpx.Response:
    return http.post(
        "/compute/daint/jobs",
        json={"job": {"script": script, "workingDirectory": f"/home/{USER}", **job}},
    )


# -- tokens ------------------------------------------------------------------------------------
def test_token_endpoint_shapes(http: httpx.Client) -> None:
    ok = http.post(
        "/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, SECRET),
        headers={"Authorization": ""},
    )
    body = ok.json()
    assert ok.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] > 30
    wrong = http.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "nope"},
        headers={"Authorization": ""},
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized_client"
    unknown = http.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "client_id": "who", "client_secret": SECRET},
        headers={"Authorization": ""},
    )
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    nogrant = http.post("/auth/token", data={"client_id": CLIENT_ID}, headers={"Authorization": ""})
    assert nogrant.status_code == 400 and nogrant.json()["error"] == "invalid_request"
    other = http.post("/auth/token", data={"grant_type": "password"}, headers={"Authorization": ""})
    assert other.status_code == 400 and other.json()["error"] == "unsupported_grant_type"


def test_bearer_401_shapes(http: httpx.Client) -> None:
    assert_error(
        http.get("/status/systems", headers={"Authorization": ""}), 401, "Not authenticated"
    )
    assert_error(
        http.get("/status/systems", headers={"Authorization": "Bearer junk"}),
        401,
        "Access token is invalid.",
    )
    http.post("/_sim/credentials", json={"revoke_tokens": True}).raise_for_status()
    assert_error(http.get("/status/systems"), 401, "Access token is invalid.")


def test_token_with_under_30s_left_is_refused(server: tuple[str, ValidatingASGI]) -> None:
    url = server[0]
    app = server[1].app
    facility = app.state.facility
    short, _ = facility.issue_token("x", ttl=20)
    r = httpx.get(f"{url}/status/systems", headers={"Authorization": f"Bearer {short}"})
    assert_error(r, 401, "Access token expires too soon (less than 30s remaining).")
    expired, _ = facility.issue_token("x", ttl=-5)
    r = httpx.get(f"{url}/status/systems", headers={"Authorization": f"Bearer {expired}"})
    assert_error(r, 401, "Access token expired")


def test_invalid_credentials_refuse_tokens_and_kill_old_ones(http: httpx.Client) -> None:
    http.post("/_sim/credentials", json={"valid": False}).raise_for_status()
    r = http.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET},
        headers={"Authorization": ""},
    )
    assert r.status_code == 401 and r.json()["error"] == "unauthorized_client"
    assert_error(http.get("/status/systems"), 401)
    http.post("/_sim/credentials", json={"valid": True}).raise_for_status()


# -- bad requests: FirecREST's shape, never a 500 ------------------------------------------------
def test_malformed_and_incomplete_submissions(http: httpx.Client) -> None:
    r = http.post(
        "/compute/daint/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(r, 400, etype="validation")
    body = assert_error(http.post("/compute/daint/jobs", json={}), 400, etype="validation")
    assert body["data"]["fields"][0]["name"] == "job"
    body = assert_error(
        http.post("/compute/daint/jobs", json={"job": {"script": "#!/bin/bash\n"}}),
        400,
        etype="validation",
    )
    assert "workingDirectory" in body["data"]["fields"][0]["name"]
    r = http.post("/compute/daint/jobs", json={"job": {"workingDirectory": "/home", "script": 5}})
    assert_error(r, 400, etype="validation")
    r = http.post("/compute/daint/jobs", json={"job": {"workingDirectory": "/home"}})
    assert_error(r, 400, etype="validation")
    r = http.post("/compute/daint/jobs", json=[1, 2])
    assert_error(r, 400, etype="validation")


def test_snake_case_and_camel_case_accepted(http: httpx.Client) -> None:
    r = http.post(
        "/compute/daint/jobs",
        json={"job": {"script": "#!/bin/bash\n", "working_directory": "/home/bob"}},
    )
    assert r.status_code == 201 and r.json()["jobId"].isdigit()
    assert r.headers["F7T-AppVersion"] == "2.5.6" and r.headers["F7T-AuthUsername"] == USER


def test_unknown_system_job_and_bad_job_id(http: httpx.Client) -> None:
    assert_error(http.get("/compute/nosuch/jobs"), 404, "System not found")
    assert_error(
        http.get("/filesystem/nosuch/ops/ls", params={"path": "/"}), 404, "System not found"
    )
    assert_error(http.get("/status/nosuch/partitions"), 404, "System not found")
    assert_error(http.get("/compute/daint/jobs/424242"), 404, "Job not found.")
    assert_error(http.delete("/compute/daint/jobs/424242"), 404, "Job not found")
    assert_error(http.get("/compute/daint/jobs/12-3"), 400, etype="validation")
    # system names are case-insensitive, as FirecREST lower-cases paths
    assert http.get("/compute/DAINT/jobs").status_code == 200


def test_filesystem_errors(http: httpx.Client) -> None:
    body = assert_error(
        http.get("/filesystem/daint/ops/ls", params={"path": "/home/bob/nope"}), 404
    )
    assert "No such file or directory" in body["message"]
    assert_error(http.get("/filesystem/daint/ops/ls"), 400, "require a path")
    assert_error(
        http.get("/filesystem/daint/ops/ls", params={"path": "rel/x"}), 400, "not an absolute path"
    )
    assert_error(
        http.post("/filesystem/daint/ops/mkdir", json={"sourcePath": "/home/bob"}),
        400,
        "File exists",
    )
    assert_error(
        http.get("/filesystem/daint/ops/view", params={"path": "/home/bob"}), 400, "Is a directory"
    )
    assert_error(
        http.get("/filesystem/daint/ops/view", params={"path": "/home/bob/.bashrc", "size": "x"}),
        400,
        etype="validation",
    )
    assert_error(
        http.post("/filesystem/daint/ops/upload", params={"path": "/home/bob"}, content=b"x"),
        400,
        etype="validation",
    )
    r = http.post("/filesystem/daint/ops/mkdir", json={"path": "/home/bob/a/b", "parent": True})
    assert r.status_code == 201 and r.json()["output"]["type"] == "d"
    r = http.put("/filesystem/daint/ops/chmod", json={"path": "/home/bob/a", "mode": "700"})
    assert r.json()["output"]["permissions"] == "rwx------"
    assert (
        http.get("/filesystem/daint/ops/file", params={"path": "/home/bob/a"}).json()["output"]
        == "directory"
    )
    assert (
        http.get(
            "/filesystem/daint/ops/tail", params={"path": "/home/bob/.bashrc", "lines": 1}
        ).status_code
        == 200
    )


def test_rejection_is_sbatch_message(http: httpx.Client) -> None:
    # the real v2 answers 500 here; the simulator answers 400 with the same words (a bad
    # request is never a 500 here: see SLURM_REFUSAL_STATUS)
    r = submit(http, "#!/bin/bash\n#SBATCH --time=02:00:00\nhostname\n", partition="debug")
    body = assert_error(r, 400, "Requested time limit is invalid")
    assert body["message"].startswith("Unexpected Slurm command response.")
    assert_error(
        submit(http, "#!/bin/bash\n#SBATCH --nodes=99\n"),
        400,
        "node configuration is not available",
    )
    assert_error(
        submit(http, "#!/bin/bash\n", partition="gpu"), 400, "invalid partition specified: gpu"
    )
    assert_error(
        submit(http, "#!/bin/bash\n#SBATCH -t banana\n"), 400, "Invalid --time specification"
    )


def test_directives_parsed(http: httpx.Client) -> None:
    script = (
        "#!/bin/bash\n#SBATCH -N 2\n#SBATCH --time=5\n#SBATCH -p debug\n#SBATCH --account=m0002\n"
        '#SBATCH --comment="superfed:abc"\n#SBATCH -J myname\nsleep 1\n#SBATCH --nodes=4\n'
    )
    jid = submit(http, script).json()["jobId"]
    job = http.get(f"/compute/daint/jobs/{jid}").json()["jobs"][0]
    assert (
        job["allocationNodes"],
        job["time"]["limit"],
        job["partition"],
        job["account"],
        job["name"],
    ) == (2, 300, "debug", "m0002", "myname")


# -- outages and chaos ---------------------------------------------------------------------------
def _health(http: httpx.Client) -> dict[str, bool]:
    system = http.get("/status/systems").json()["systems"][0]
    return {
        f"{h['serviceType']}{h.get('path') or ''}": h["healthy"] for h in system["servicesHealth"]
    }


def test_compute_outage(http: httpx.Client) -> None:
    http.post("/_sim/outage", json={"component": "compute", "state": "down", "note": "maintenance"})
    assert _health(http)["scheduler"] is False
    body = assert_error(
        submit(http, "#!/bin/bash\n"), 503, "The scheduler service for the requested system (daint)"
    )
    assert body["user"] == USER
    assert_error(http.get("/compute/daint/jobs"), 503)
    assert http.get("/filesystem/daint/ops/ls", params={"path": "/home/bob"}).status_code == 200
    http.post("/_sim/outage", json={"component": "compute", "state": "degraded"})
    system = http.get("/status/systems").json()["systems"][0]
    sched = next(h for h in system["servicesHealth"] if h["serviceType"] == "scheduler")
    assert sched["healthy"] is True and sched["latency"] > 5
    assert submit(http, "#!/bin/bash\n").status_code == 201


def test_filesystem_outage(http: httpx.Client) -> None:
    http.post("/_sim/outage", json={"component": "filesystem", "state": "down"})
    assert _health(http)["filesystem/home"] is False
    assert_error(
        http.get("/filesystem/daint/ops/ls", params={"path": "/scratch/bob"}),
        503,
        "The requested filesystem (/scratch on daint) is unhealthy.",
    )
    assert submit(http, "#!/bin/bash\n").status_code == 201


def test_chaos_uses_firecrest_error_body(http: httpx.Client) -> None:
    http.post(
        "/_sim/chaos", json={"error_rate": 1.0, "status": 503, "retry_after": 1}
    ).raise_for_status()
    r = http.get("/status/systems")
    assert_error(r, 503, "Service temporarily unavailable")
    assert r.headers["retry-after"] == "1"
    http.post("/_sim/chaos", json={}).raise_for_status()
    assert http.get("/status/systems").status_code == 200


def test_liveness_needs_no_token(http: httpx.Client) -> None:
    r = http.get("/status/liveness/", headers={"Authorization": ""})
    assert r.status_code == 200 and set(r.json()["healthcheckRuns"]) == {"daint", "eiger"}


def test_unknown_route_and_many_jobs_unvalidated() -> None:
    """Outside the spec (an unknown route) and timing-sensitive checks: no validator in the way."""
    settings = SimSettings(enforce_policy=False, systems=["daint"], nodes=64, time_scale=0.0001, user=USER)
    app = create_app(settings)
    token, _ = app.state.facility.issue_token("x")
    with (
        ThreadedServer(app) as srv,
        httpx.Client(
            base_url=srv.url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        ) as http,
    ):
        assert_error(http.get("/no/such/route"), 404, "Not Found")
        assert_error(http.put("/status/systems"), 405)
        for _ in range(1000):
            assert submit(http, "#!/bin/bash\nsleep 1\n").status_code == 201
        time.sleep(0.05)
        http.get("/compute/daint/jobs")  # finished jobs keep their wire form from now on
        # all of them, every time (how fast is bench/simulators.py's "status of 1,000 jobs")
        for _ in range(2):
            assert len(http.get("/compute/daint/jobs").json()["jobs"]) == 1000


# -- transfers, staging, tree operations -----------------------------------------------------
def test_transfer_errors_and_shapes(http: httpx.Client) -> None:
    home = f"/home/{USER}"
    assert_error(
        http.post("/filesystem/daint/transfer/cp", json={"sourcePath": f"{home}/.bashrc"}), 400, etype="validation"
    )
    assert_error(
        http.post("/filesystem/daint/transfer/mv", json={"sourcePath": "rel", "targetPath": f"{home}/x"}),
        400,
        "not an absolute path",
    )
    assert_error(
        http.post(
            "/filesystem/daint/transfer/upload",
            json={"path": f"{home}/big", "transfer_directives": {"transfer_method": "streamer", "file_size": 5}},
        ),
        400,
        "s3 only",
    )
    assert_error(
        http.post(
            "/filesystem/daint/transfer/compress",
            json={"sourcePath": f"{home}/a", "targetPath": f"{home}/b", "compression": "zip"},
        ),
        400,
        etype="validation",
    )
    # a path with quotes and a command substitution reaches the job's script quoted: it is a name
    weird = f"{home}/it's $(touch pwned) `x`"
    http.post("/filesystem/daint/ops/upload", params={"path": home}, files={"file": ("plain", b"1")})
    r = http.post("/filesystem/daint/transfer/cp", json={"sourcePath": f"{home}/plain", "targetPath": weird})
    assert r.status_code == 201
    job = r.json()["transferJob"]
    assert set(job) == {"jobId", "system", "workingDirectory", "logs"}
    for _ in range(200):
        if http.get(f"/compute/daint/jobs/{job['jobId']}").json()["jobs"][0]["status"]["state"] == "COMPLETED":
            break
    names = {f["name"] for f in http.get("/filesystem/daint/ops/ls", params={"path": home}).json()["output"]}
    assert "it's $(touch pwned) `x`" in names and "pwned" not in names
    log = http.get("/filesystem/daint/ops/view", params={"path": job["logs"]["outputLog"]}).json()["output"]
    assert "Files were successfully copied." in log


def test_staging_urls_refuse_what_s3_refuses(http: httpx.Client) -> None:
    home = f"/home/{USER}"
    r = http.post(
        "/filesystem/daint/transfer/upload",
        json={"sourcePath": f"{home}/up.bin", "transferDirectives": {"transferMethod": "s3", "fileSize": 3}},
    )
    assert r.status_code == 201
    d = r.json()["transferDirectives"]
    assert d["maxPartSize"] == 2 << 20 and len(d["partsUploadUrls"]) == 1
    part = d["partsUploadUrls"][0]
    assert httpx.put(part.replace("partNumber=1", "partNumber=2"), content=b"abc").status_code == 400
    tag = httpx.put(part, content=b"abc").headers["ETag"]
    bad = (
        '<CompleteMultipartUpload><Part><ETag>"nope"</ETag><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>'
    )
    assert httpx.post(d["completeUploadUrl"], content=bad).status_code == 400
    good = (
        f"<CompleteMultipartUpload><Part><ETag>{tag}</ETag><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>"
    )
    assert httpx.post(d["completeUploadUrl"], content=good).status_code == 200
    assert httpx.put(part, content=b"abc").status_code == 404  # complete: no more parts
    assert httpx.get(d["completeUploadUrl"].split("?")[0] + "x").status_code == 404
    job = r.json()["transferJob"]["jobId"]
    for _ in range(200):
        if http.get(f"/compute/daint/jobs/{job}").json()["jobs"][0]["status"]["state"] == "COMPLETED":
            break
    assert http.get("/filesystem/daint/ops/download", params={"path": f"{home}/up.bin"}).content == b"abc"


def test_tree_ops_errors(http: httpx.Client) -> None:
    home = f"/home/{USER}"
    assert_error(
        http.post("/filesystem/daint/ops/symlink", json={"sourcePath": f"{home}/.bashrc"}), 400, etype="validation"
    )
    r = http.post("/filesystem/daint/ops/symlink", json={"sourcePath": f"{home}/.bashrc", "linkPath": f"{home}/rc"})
    assert r.status_code == 201 and r.json()["output"]["linkTarget"] == f"{home}/.bashrc"
    assert_error(
        http.post("/filesystem/daint/ops/symlink", json={"sourcePath": "/x", "linkPath": f"{home}/rc"}),
        400,
        "File exists",
    )
    assert_error(
        http.put("/filesystem/daint/ops/chown", json={"path": f"{home}/rc", "owner": "bad name;"}), 400, "invalid user"
    )
    assert_error(http.put("/filesystem/daint/ops/chown", json={"path": f"{home}/nope", "owner": USER}), 404)
    assert_error(
        http.post("/filesystem/daint/ops/extract", json={"sourcePath": f"{home}/.bashrc", "targetPath": home}),
        400,
        "does not look like a tar archive",
    )
    assert_error(http.put("/compute/daint/jobs/99999/attach", json={"command": "true"}), 404, "Job not found")
