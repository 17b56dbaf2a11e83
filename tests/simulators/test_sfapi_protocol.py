"""The SF API simulator on the wire: column sets, sacct/squeue/cached semantics, token
endpoint refusals, FastAPI-shaped errors, paths, tasks, outages.  Raw HTTP, no client."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from tests.support.sfapi import CLIENT_ID, HOME, USER, SfapiSim, running_sim
from tests.support.specs import spec_path

SAMPLES = "nersc-sfapi/sfapi_client-job-status-samples"
TOKEN = "static-test-token"


@pytest.fixture(scope="module")
def sim() -> Iterator[SfapiSim]:
    yield from running_sim(static_tokens=[TOKEN])


@pytest.fixture
def api(sim: SfapiSim) -> Iterator[httpx.Client]:
    sim.control("reset")
    with httpx.Client(
        base_url=sim.api, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as c:
        yield c
    sim.control("chaos", {})


def submit(api: httpx.Client, script: str, **form: str) -> dict[str, Any]:
    r = api.post("/compute/jobs/perlmutter", data={"job": script, "isPath": "false", **form})
    assert r.status_code == 200 and r.json()["status"] == "OK" and r.json()["error"] is None
    task = api.get(f"/tasks/{r.json()['task_id']}").json()
    assert set(task) == {"id", "status", "result"} and task["status"] == "completed"
    return json.loads(task["result"])


def jobs(
    api: httpx.Client, *kwargs: str, sacct: bool = True, cached: bool = False
) -> list[dict[str, str]]:
    params = [
        ("sacct", str(sacct).lower()),
        ("cached", str(cached).lower()),
        *(("kwargs", k) for k in kwargs),
    ]
    body = api.get("/compute/jobs/perlmutter", params=params).json()
    assert body["status"] == "OK" and body["error"] is None
    return body["output"]  # type: ignore[no-any-return]


SLEEPY = "#!/bin/bash\n#SBATCH -N 1\n#SBATCH -t 60\n#SBATCH --comment=superfed:t1\nsleep 100000\n"


def test_rows_have_nersc_columns(api: httpx.Client) -> None:
    jobid = submit(api, SLEEPY)["jobid"]
    sacct_cols = json.loads(spec_path(f"{SAMPLES}/Sacct.json").read_text())["output"][0].keys()
    squeue_cols = json.loads(spec_path(f"{SAMPLES}/Squeue.json").read_text())["output"][0].keys()
    [srow] = jobs(api, f"jobid={jobid}")
    [qrow] = jobs(api, f"jobid={jobid}", sacct=False)
    assert list(srow) == list(sacct_cols) and list(qrow) == list(squeue_cols)
    assert all(isinstance(v, str) for v in [*srow.values(), *qrow.values()])
    assert (srow["jobid"], srow["comment"], srow["user"], srow["state"]) == (
        jobid,
        "superfed:t1",
        USER,
        "RUNNING",
    )
    assert (qrow["st"], qrow["nodelist(reason)"].startswith("nid"), qrow["s:c:t"]) == (
        "R",
        True,
        "*:*:*",
    )


def test_sacct_keeps_finished_jobs_squeue_only_live_ones(api: httpx.Client) -> None:
    quick = submit(api, "#!/bin/bash\necho hi\n")["jobid"]
    slow = submit(api, SLEEPY)["jobid"]
    time.sleep(0.05)
    both = f"jobid={quick},{slow}"
    assert {r["jobid"]: r["state"] for r in jobs(api, both)} == {
        quick: "COMPLETED",
        slow: "RUNNING",
    }
    assert [r["jobid"] for r in jobs(api, both, sacct=False)] == [slow]
    assert jobs(api, "jobid=424242") == [] and jobs(api, "jobid=424242", sacct=False) == []
    assert {r["jobid"] for r in jobs(api, f"user={USER}")} == {quick, slow}
    assert jobs(api, "user=somebodyelse") == []
    assert [
        r["jobid"] for r in api.get(f"/compute/jobs/perlmutter/{slow}").json()["output"]
    ] == []  # cached
    assert [
        r["jobid"]
        for r in api.get(f"/compute/jobs/perlmutter/{slow}?cached=false").json()["output"]
    ] == [slow]


def test_cached_queries_lag_behind_fresh_submissions(api: httpx.Client) -> None:
    jobid = submit(api, SLEEPY)["jobid"]
    assert jobs(api, f"jobid={jobid}", cached=True) == []  # sfapi_client issue #93
    assert len(jobs(api, f"jobid={jobid}", cached=False)) == 1


def test_index_and_limit(api: httpx.Client) -> None:
    ids = [submit(api, SLEEPY)["jobid"] for _ in range(5)]
    out = api.get(
        "/compute/jobs/perlmutter",
        params={"sacct": "true", "cached": "false", "index": 1, "limit": 2},
    )
    assert [r["jobid"] for r in out.json()["output"]] == ids[1:3]


def test_cancel_is_a_task_and_sacct_names_the_canceller(sim: SfapiSim, api: httpx.Client) -> None:
    jobid = submit(api, SLEEPY)["jobid"]
    r = api.delete(f"/compute/jobs/perlmutter/{jobid}")
    assert r.json()["status"] == "OK"
    assert json.loads(api.get(f"/tasks/{r.json()['task_id']}").json()["result"])["status"] == "ok"
    [row] = jobs(api, f"jobid={jobid}")
    assert (row["state"], row["exitcode"]) == (f"CANCELLED by {sim.settings.uid}", "0:15")
    again = api.delete(f"/compute/jobs/perlmutter/{jobid}").json()
    result = json.loads(api.get(f"/tasks/{again['task_id']}").json()["result"])
    assert result["status"] == "error" and "already completing or completed" in result["error"]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("echo no shebang\n", "This does not look like a batch script"),
        ("#!/bin/bash\n#SBATCH --bogus=1\n", "unrecognized option '--bogus'"),
        ("#!/bin/bash\n#SBATCH --time=forever\n", "Invalid --time specification"),
        ("#!/bin/bash\n#SBATCH --nodes=9\n", "Requested node configuration is not available"),
        ("#!/bin/bash\n#SBATCH --partition=nope\n", "invalid partition specified: nope"),
        ("#!/bin/bash\n#SBATCH --qos=nope\n", "Invalid qos specification"),
        ("#!/bin/bash\n#SBATCH --account=nope\n", "Invalid account"),
    ],
)
def test_sbatch_errors_are_task_results(api: httpx.Client, script: str, message: str) -> None:
    result = submit(api, script)
    assert result["status"] == "error" and result["jobid"] is None
    assert result["error"].startswith("sbatch: ") and message in result["error"]


def test_indented_directives_are_ignored(api: httpx.Client) -> None:
    jobid = submit(api, "#!/bin/bash\n  #SBATCH --nodes=4\n#SBATCH -J real\necho\n")["jobid"]
    [row] = jobs(api, f"jobid={jobid}")
    assert (row["nnodes"], row["jobname"]) == ("1", "real")


def test_compute_down_refuses_submissions_and_keeps_the_queue(
    sim: SfapiSim, api: httpx.Client
) -> None:
    wide = submit(api, "#!/bin/bash\n#SBATCH -N 8\nsleep 100000\n")["jobid"]
    queued = submit(api, "#!/bin/bash\n#SBATCH -N 1\nsleep 10\n")["jobid"]
    sim.control("outage", {"component": "compute", "state": "down"})
    result = submit(api, "#!/bin/bash\necho x\n")
    assert "Unable to contact slurm controller" in result["error"]
    api.delete(f"/compute/jobs/perlmutter/{wide}")  # scancel can't reach the controller either
    assert {r["jobid"]: r["state"] for r in jobs(api, f"jobid={wide},{queued}")} == {
        wide: "RUNNING",
        queued: "PENDING",
    }
    sim.control("outage", {"component": "compute", "state": "up"})
    api.delete(f"/compute/jobs/perlmutter/{wide}")
    time.sleep(0.2)
    assert [r["state"] for r in jobs(api, f"jobid={queued}")] == ["COMPLETED"]


def test_scheduler_down_breaks_squeue_not_sacct(sim: SfapiSim, api: httpx.Client) -> None:
    sim.control("outage", {"component": "scheduler", "state": "down"})
    body = api.get("/compute/jobs/perlmutter", params={"sacct": "false"}).json()
    assert body["status"] == "ERROR" and "slurm_load_jobs error" in body["error"]
    assert jobs(api) == []
    status = httpx.get(f"{sim.api}/status/perlmutter").json()
    assert status["status"] == "unavailable"


def test_status_resources_notes_and_outages(sim: SfapiSim, api: httpx.Client) -> None:
    everything = httpx.get(f"{sim.api}/status/").json()
    assert {s["system_type"] for s in everything} == {"compute", "filesystem", "service", "storage"}
    assert all(
        s["status"] == "active" and s["updated_at"].endswith(("-08:00", "-07:00"))
        for s in everything
    )
    sim.control("outage", {"component": "login", "state": "down", "note": "proxy broke"})
    assert httpx.get(f"{sim.api}/status/ssh-proxy").json()["status"] == "unavailable"
    notes = httpx.get(f"{sim.api}/status/notes/ssh-proxy").json()
    assert notes[0]["active"] is True and "proxy broke" in notes[0]["notes"]
    outages = [o for group in httpx.get(f"{sim.api}/status/outages").json() for o in group]
    assert [(o["name"], o["status"], o["swo"]) for o in outages] == [("ssh-proxy", "Active", "out")]
    planned = [o for g in httpx.get(f"{sim.api}/status/outages/planned").json() for o in g]
    assert [(o["name"], o["status"]) for o in planned] == [("perlmutter", "Planned")]
    assert httpx.get(f"{sim.api}/status/nosuch").status_code == 404


def test_login_and_filesystem_outages_in_utilities(sim: SfapiSim, api: httpx.Client) -> None:
    sim.control("outage", {"component": "filesystem", "state": "down"})
    ls = api.get(f"/utilities/ls/perlmutter/{HOME}").json()
    assert ls["status"] == "ERROR" and "Input/output error" in ls["error"]
    sim.control("outage", {"component": "login", "state": "down"})
    task = api.post("/utilities/command/perlmutter", data={"executable": "hostname"}).json()
    result = json.loads(api.get(f"/tasks/{task['task_id']}").json()["result"])
    assert result["exit_code"] == 255 and "Connection timed out" in result["error"]


def test_paths_in_every_form(api: httpx.Client) -> None:
    for url in (
        f"/utilities/ls/perlmutter/{HOME}",
        "/utilities/ls/perlmutter/%2Fglobal%2Fhomes%2Fe%2Felvis",
        "/utilities/ls/perlmutter/hello.sh",
    ):
        body = api.get(url).json()
        assert body["status"] == "OK", url
    assert [e["name"] for e in api.get(f"/utilities/ls/perlmutter/{HOME}").json()["entries"]] == [
        ".",
        "..",
        ".bashrc",
        "hello.sh",
    ]
    [single] = api.get("/utilities/ls/perlmutter/hello.sh").json()["entries"]  # relative to $HOME
    assert single["name"] == f"{HOME}/hello.sh" and single["perms"] == "-rw-r--r--"
    missing = api.get("/utilities/ls/perlmutter//nope").json()
    assert missing == {
        "status": "ERROR",
        "entries": [],
        "error": "ls: cannot access '/nope': No such file or directory",
        "file": None,
        "is_binary": False,
    }


def test_upload_download_binary(api: httpx.Client) -> None:
    up = api.put(
        f"/utilities/upload/perlmutter/{HOME}/b.bin", files={"file": ("b.bin", b"\xff\x00ab")}
    ).json()
    assert up["status"] == "OK"
    plain = api.get(f"/utilities/download/perlmutter/{HOME}/hello.sh").json()
    assert (
        plain["status"] == "OK"
        and plain["is_binary"] is False
        and plain["file"].startswith("#!/bin/bash")
    )
    binary = api.get(
        f"/utilities/download/perlmutter/{HOME}/b.bin", params={"binary": "true"}
    ).json()
    assert binary == {"status": "OK", "file": "/wBhYg==", "is_binary": True, "error": None}
    assert (
        api.get(f"/utilities/download/perlmutter/{HOME}").json()["error"].endswith("Is a directory")
    )


def test_commands_and_task_lifecycle(api: httpx.Client) -> None:
    def run(line: str) -> dict[str, Any]:
        task_id = api.post("/utilities/command/dtns", data={"executable": line}).json()["task_id"]
        return json.loads(api.get(f"/tasks/{task_id}").json()["result"])

    assert run("whoami")["output"] == f"{USER}\n"
    assert run("hostname")["output"] == "dtn03\n"
    assert run("bash -c 'mkdir -p d/e && cd d && pwd'")["output"] == f"{HOME}/d\n"
    assert run("ls")["output"] == "d\nhello.sh\n"
    assert run("cat nope") == {
        "status": "error",
        "output": "",
        "error": "cat: nope: No such file or directory\n",
        "exit_code": 1,
    }
    assert run("sbatch x")["exit_code"] == 127
    slow = api.post(
        "/utilities/command/perlmutter", data={"executable": "sleep 1000; echo late"}
    ).json()
    assert api.get(f"/tasks/{slow['task_id']}").json() == {
        "id": slow["task_id"],
        "status": "new",
        "result": None,
    }
    assert api.delete(f"/tasks/{slow['task_id']}").json()["status"] == "cancelled"
    listed = api.get("/tasks").json()["tasks"]
    assert slow["task_id"] in [t["id"] for t in listed]
    assert api.get("/tasks/nope").status_code == 404


def test_account_routes(sim: SfapiSim, api: httpx.Client) -> None:
    assert api.get("/account/").json()["name"] == USER
    assert api.get("/account", params={"username": "other"}).json()["name"] == "other"
    projects = api.get("/account/projects").json()
    assert [p["repo_name"] for p in projects] == list(sim.settings.projects)
    assert api.get("/account/groups").json()["groups"][0]["users"][0]["name"] == USER
    assert api.get("/account/clients").json()[0]["clientId"] == CLIENT_ID
    t = api.post(
        "/storage/globus/transfer",
        data={"source_uuid": "dtn", "target_uuid": "dtn", "source_dir": "/a", "target_dir": "/b"},
    ).json()
    assert (
        api.get(f"/storage/globus/transfer/{t['transfer_id']}").json()["globus_status"]
        == "SUCCEEDED"
    )


def test_fastapi_shaped_errors(sim: SfapiSim, api: httpx.Client) -> None:
    r = api.post("/compute/jobs/perlmutter", data={})
    assert r.status_code == 422
    assert [(d["loc"], d["type"]) for d in r.json()["detail"]] == [
        (["body", "isPath"], "missing"),
        (["body", "job"], "missing"),
    ]
    assert (
        api.post("/compute/jobs/perlmutter", data={"job": "x", "isPath": "maybe"}).status_code
        == 422
    )
    assert api.post("/utilities/command/perlmutter", data={}).json()["detail"][0]["loc"] == [
        "body",
        "executable",
    ]
    assert api.put(f"/utilities/upload/perlmutter/{HOME}/x", data={"a": "b"}).status_code == 422
    assert api.get("/compute/jobs/perlmutter", params={"limit": "many"}).status_code == 422
    for path in ("/nothing/here", "/compute/jobs/cori", "/compute/jobs/dtn01"):
        r = api.get(path)
        assert (r.status_code, r.json()) == (404, {"detail": "Not Found"}), path
    assert api.put("/status").status_code == 405
    assert (
        api.get(
            "/compute/jobs/perlmutter", params=[("kwargs", "garbage"), ("sacct", "true")]
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("header", "reason"),
    [(None, "missing"), ("Bearer nonsense", "invalid"), ("Basic abc", "invalid")],
)
def test_bearer_refusals_name_the_reason(sim: SfapiSim, header: str | None, reason: str) -> None:
    r = httpx.get(f"{sim.api}/account/", headers={"Authorization": header} if header else {})
    assert r.status_code == 401 and reason in r.json()["detail"]


def assertion(sim: SfapiSim, **claims: object) -> str:
    now = int(time.time())
    body = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": sim.token_url,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None}, sim.private_pem, algorithm="RS256"
    )


def token_request(sim: SfapiSim, client_assertion: str, **form: str) -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": client_assertion,
        **form,
    }
    return httpx.post(sim.token_url, data=data)


def test_token_endpoint_issues_and_tokens_expire_and_revoke(sim: SfapiSim) -> None:
    sim.control("reset")
    r = token_request(sim, assertion(sim))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", sim.settings.token_ttl)
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert httpx.get(f"{sim.api}/account/", headers=auth).status_code == 200
    sim.control("credentials", {"revoke_tokens": True})
    r = httpx.get(f"{sim.api}/account/", headers=auth)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"aud": "https://oidc.nersc.gov/c2id/token"}, "audience"),
        ({"iss": "zzzzzzzzzzzzz", "sub": "zzzzzzzzzzzzz"}, "unknown client"),
        ({"sub": "zzzzzzzzzzzzz"}, "iss and sub"),
        ({"exp": None}, "exp"),
    ],
)
def test_token_endpoint_refuses_bad_assertions(
    sim: SfapiSim, claims: dict[str, object], why: str
) -> None:
    r = token_request(sim, assertion(sim, **claims))
    assert (
        r.status_code == 401
        and r.json()["error"] == "invalid_client"
        and why in r.json()["error_description"]
    )


def test_token_endpoint_refuses_bad_requests(sim: SfapiSim) -> None:
    assert (
        token_request(sim, assertion(sim), grant_type="password").json()["error"]
        == "unsupported_grant_type"
    )
    assert token_request(sim, "").status_code == 400
    assert token_request(sim, "not-a-jwt").json()["error"] == "invalid_client"
    sim.control("credentials", {"valid": False})
    try:
        r = token_request(sim, assertion(sim))
        assert r.status_code == 401 and "revoked" in r.json()["error_description"]
    finally:
        sim.control("reset")


def test_chaos_errors_are_fastapi_shaped(sim: SfapiSim, api: httpx.Client) -> None:
    sim.control("chaos", {"error_rate": 1.0, "status": 503})
    r = api.get("/account/")
    assert r.status_code == 503 and set(r.json()) == {"detail"}
    assert (
        httpx.post(f"{sim.url}/_sim/chaos", json={}).status_code == 200
    )  # control is never affected


def test_jobs_write_their_output_files(api: httpx.Client) -> None:
    plain = submit(api, "#!/bin/bash\nexport WHO=world\necho hello $WHO\nsrun -n 2 hostname\n")[
        "jobid"
    ]
    named = submit(
        api,
        f"#!/bin/bash\n#SBATCH -o {HOME}/out-%j.txt\n#SBATCH -e err.txt\n"
        "bash -c 'echo inner; exit 3'\ncat nope\necho after\n",
    )["jobid"]
    time.sleep(0.05)
    read = lambda p: api.get(f"/utilities/download/perlmutter/{p}").json()["file"]  # noqa: E731
    node = f"nid{1000 + int(plain) % 3000:06d}"  # the node sacct's NodeList names
    assert read(f"{HOME}/slurm-{plain}.out") == f"hello world\n{node}\n{node}\n"  # srun -n 2: twice
    assert read(f"{HOME}/out-{named}.txt") == "inner\nafter\n"
    assert read(f"{HOME}/err.txt") == "cat: nope: No such file or directory\n"
