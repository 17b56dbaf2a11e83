"""The IRI v1 simulator (ALCF over PBS) driven over HTTP as any IRI client would, with every
protocol response validated against the IRI v1 OpenAPI spec (openapi-core)."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.common.facility import SimSettings
from simulators.iri import create_app
from tests.support.openapi import ValidatingASGI, load_spec
from tests.support.servers import ThreadedServer, wait_until

TOKEN = "alcf-static-token"
POLARIS = "55c1c993-1124-47f9-b823-514ba3849a9a"
EAGLE = "1c3ad9d4-2e91-42bc-becb-72b1fde1235c"
HOME = "6115bd2c-957a-4543-abff-5fae52992ff2"
SPEC = "iri/all_spec_v1.yaml"
PROD = {"queue_name": "prod"}
JOB_STATES = {"new", "queued", "held", "active", "completed", "failed", "canceled"}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, ValidatingASGI]]:
    settings = SimSettings(enforce_policy=False, systems=["polaris"], nodes=4, time_scale=0.01, static_tokens=[TOKEN])
    wrapper = ValidatingASGI(create_app(settings), load_spec(SPEC))
    with ThreadedServer(wrapper) as srv:
        yield srv.url, wrapper
    assert wrapper.errors == []
    assert wrapper.validated > 0


@pytest.fixture
def http(server: tuple[str, ValidatingASGI]) -> Iterator[httpx.Client]:
    url, wrapper = server
    with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        c.post("/_sim/reset").raise_for_status()
        yield c
    assert wrapper.errors == [], wrapper.errors


def spec_body(**over: Any) -> dict[str, Any]:
    attrs = {
        "duration": 600,
        "account": "m0001",
        "queue_name": "debug",
        "custom_attributes": {"filesystems": "home:eagle"},
    }
    attrs.update(over.pop("attributes", {}))
    body = {
        "executable": "/bin/bash",
        "arguments": ["-lc", "echo hi; sleep 1; exit 0"],
        "name": "my_job",
        "resources": {"node_count": 1},
        "attributes": attrs,
    }
    body.update(over)
    return body


def submit(c: httpx.Client, **over: Any) -> dict[str, Any]:
    r = c.post(f"/api/v1/compute/job/{POLARIS}", json=spec_body(**over))
    assert r.status_code == 200, r.text
    return r.json()


def job(c: httpx.Client, jid: str, **params: str) -> dict[str, Any]:
    r = c.get(f"/api/v1/compute/status/{POLARIS}/{jid}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def wait_state(c: httpx.Client, jid: str, states: set[str], timeout: float = 60.0) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        j = job(c, jid)
        return j if j["status"]["state"] in states else None

    return wait_until(reached, timeout=timeout, interval=0.02, what=f"job {jid} in {states}")


def assert_problem(r: httpx.Response, status: int, detail: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == status and body["type"] and body["instance"] and "title" in body
    if detail is not None:
        assert body["detail"] == detail
    return body


def run_task(c: httpx.Client, r: httpx.Response, expect: str = "completed") -> dict[str, Any]:
    assert r.status_code in (200, 201), r.text
    ref = r.json()
    assert ref["task_uri"].endswith(f"/api/v1/task/{ref['task_id']}")
    def done() -> dict[str, Any] | None:
        t: dict[str, Any] = c.get(f"/api/v1/task/{ref['task_id']}").json()
        return t if t["status"] != "pending" else None

    t = wait_until(done, timeout=5, interval=0.005, what=f"task {ref['task_id']} done")
    assert t["status"] == expect, t
    return t["result"]


# -- the validator itself has teeth ---------------------------------------------------------
def test_validator_rejects_a_wrong_body() -> None:
    from tests.support.openapi import _Req, _Resp

    scope = {
        "headers": [(b"host", b"x")],
        "path": "/api/v1/facility",
        "method": "GET",
        "query_string": b"",
    }
    bad = _Resp(200, [(b"content-type", b"application/json")], b'{"name": 3}')
    with pytest.raises(Exception):  # noqa: B017 - any openapi-core validation error
        load_spec(SPEC).validate_response(_Req(scope, b""), bad)


# -- facility and status --------------------------------------------------------------------
def test_facility_sites_and_resources(http: httpx.Client) -> None:
    fac = http.get("/api/v1/facility").json()
    assert fac["short_name"] == "ALCF"
    site_id = fac["site_uris"][0].rsplit("/", 1)[1]
    site = http.get(f"/api/v1/facility/sites/{site_id}").json()
    assert site["short_name"] == "ANL" and len(http.get("/api/v1/facility/sites").json()) == 1
    resources = {r["name"]: r for r in http.get("/api/v1/status/resources").json()}
    assert (
        resources["polaris"]["id"] == POLARIS and resources["polaris"]["resource_type"] == "compute"
    )
    assert resources["eagle"]["id"] == EAGLE and resources["home"]["id"] == HOME
    assert {r["current_status"] for r in resources.values()} == {"up"}
    assert [r["id"] for r in http.get("/api/v1/compute/resources").json()] == [POLARIS]
    assert {r["id"] for r in http.get("/api/v1/filesystem/resources").json()} == {EAGLE, HOME}
    assert http.get(f"/api/v1/status/resources/{POLARIS}").json()["name"] == "polaris"
    storage = http.get("/api/v1/status/resources", params={"resource_type": "storage"}).json()
    assert {r["name"] for r in storage} == {"eagle", "home"}
    assert_problem(http.get("/api/v1/status/resources/nope"), 404)
    assert_problem(http.get("/api/v1/status/resources", params={"current_status": "sideways"}), 400)
    later = "2999-01-01T00:00:00Z"
    assert http.get("/api/v1/facility", params={"modified_since": later}).status_code == 304
    assert_problem(http.get("/api/v1/facility", params={"modified_since": "yesterday"}), 400)
    caps = http.get("/api/v1/account/capabilities").json()
    assert {c["id"] for c in caps} >= {"polaris-compute", "eagle-storage"}
    assert http.get("/api/v1/account/capabilities/polaris-compute").json()["units"] == [
        "node_hours"
    ]


def test_outage_opens_an_unplanned_incident_and_queued_jobs_wait(http: httpx.Client) -> None:
    queued = submit(http, arguments=["-lc", "sleep 1"])  # runs at once: machine idle
    http.post(
        "/_sim/outage", json={"component": "compute", "state": "down", "note": "cooling"}
    ).raise_for_status()
    res = http.get(f"/api/v1/status/resources/{POLARIS}").json()
    assert res["current_status"] == "down"
    incidents = http.get("/api/v1/status/incidents", params={"resolution": "unresolved"}).json()
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc["type"] == "unplanned" and inc["status"] == "down" and inc["end"] is None
    assert inc["resource_uris"][0].endswith(POLARIS)
    events = http.get("/api/v1/status/events", params={"incident_id": inc["id"]}).json()
    assert [e["status"] for e in events] == ["down"]
    assert (
        http.get(f"/api/v1/status/events/{events[0]['id']}")
        .json()["incident_uri"]
        .endswith(inc["id"])
    )
    # submissions fail the way the API says a resource is unavailable
    body = assert_problem(http.post(f"/api/v1/compute/job/{POLARIS}", json=spec_body()), 503)
    assert "polaris is down" in body["detail"] and inc["id"] in body["detail"]
    assert body["type"].endswith("/resource-unavailable")
    # status queries still answer; the job submitted before finishes or waits
    wait_state(http, queued["id"], {"completed"})
    http.post("/_sim/outage", json={"component": "compute", "state": "up"}).raise_for_status()
    resolved = http.get(f"/api/v1/status/incidents/{inc['id']}").json()
    assert resolved["resolution"] == "completed" and resolved["end"] is not None
    assert len(resolved["event_uris"]) == 2
    assert http.get("/api/v1/status/incidents", params={"resolution": "unresolved"}).json() == []
    assert http.get(f"/api/v1/status/resources/{POLARIS}").json()["current_status"] == "up"


def test_jobs_queued_during_an_outage_start_when_it_ends(http: httpx.Client) -> None:
    http.post(
        "/_sim/outage", json={"component": "scheduler", "state": "degraded"}
    ).raise_for_status()
    assert http.get(f"/api/v1/status/resources/{POLARIS}").json()["current_status"] == "degraded"
    http.post("/_sim/outage", json={"component": "scheduler", "state": "up"}).raise_for_status()
    # the first holds every node until it is cancelled (no race with the clock on a busy machine)
    first = submit(http, arguments=["-lc", "sleep 100000"], resources={"node_count": 4}, attributes=PROD)
    second = submit(http, arguments=["-lc", "sleep 1"], resources={"node_count": 1})
    assert job(http, second["id"])["status"]["state"] == "queued"
    http.post("/_sim/outage", json={"component": "compute", "state": "down"}).raise_for_status()
    http.delete(f"/api/v1/compute/cancel/{POLARIS}/{first['id']}").raise_for_status()
    assert wait_state(http, first["id"], {"canceled"})["status"]["state"] == "canceled"
    time.sleep(0.1)  # nodes are free now, but the compute nodes are down: nothing starts
    j = job(http, second["id"])
    assert j["status"]["state"] == "queued" and j["status"]["meta_data"]["job_state"] == "Q"
    assert j["status"]["message"].startswith("Not Running:")
    http.post("/_sim/outage", json={"component": "compute", "state": "up"}).raise_for_status()
    assert wait_state(http, second["id"], {"completed"})["status"]["state"] == "completed"


def test_filesystem_outage_marks_storage_down_and_refuses_operations(http: httpx.Client) -> None:
    http.post("/_sim/outage", json={"component": "filesystem", "state": "down"}).raise_for_status()
    states = {r["name"]: r["current_status"] for r in http.get("/api/v1/status/resources").json()}
    assert states == {"polaris": "up", "eagle": "down", "home": "down"}
    inc = http.get("/api/v1/status/incidents").json()[0]
    assert len(inc["resource_uris"]) == 2
    assert_problem(http.get(f"/api/v1/filesystem/ls/{EAGLE}", params={"path": "/eagle"}), 503)


# -- auth -----------------------------------------------------------------------------------
def test_auth_refusals_are_problems(http: httpx.Client, server: tuple[str, ValidatingASGI]) -> None:
    url = server[0]
    r = httpx.get(f"{url}/api/v1/account/projects")
    assert_problem(r, 401, "Bearer token is missing.")
    assert r.headers["www-authenticate"] == "Bearer"
    assert_problem(
        httpx.get(f"{url}/api/v1/account/projects", headers={"Authorization": "Bearer nope"}), 401
    )
    assert httpx.get(f"{url}/api/v1/status/resources").status_code == 200  # status is public
    http.post("/_sim/credentials", json={"valid": False}).raise_for_status()
    assert_problem(http.get("/api/v1/account/projects"), 401, "Bearer token has been revoked.")
    assert_problem(http.post(f"/api/v1/compute/job/{POLARIS}", json=spec_body()), 401)
    assert_problem(http.get("/api/v1/task/x"), 401)


# -- account --------------------------------------------------------------------------------
def test_projects_and_allocations_charge_node_hours(http: httpx.Client) -> None:
    projects = http.get("/api/v1/account/projects").json()
    assert [p["id"] for p in projects] == ["m0001", "m0002"]
    assert http.get("/api/v1/account/projects/m0001").json()["user_ids"] == ["superfed"]
    assert_problem(http.get("/api/v1/account/projects/nope"), 404)
    allocs = http.get("/api/v1/account/projects/m0001/project_allocations").json()
    assert allocs[0]["id"] == "m0001.polaris"
    entry = allocs[0]["entries"][0]
    assert entry == {"allocation": 10000.0, "usage": 0.0, "unit": "node_hours"}
    j = submit(http, arguments=["-lc", "sleep 360"], resources={"node_count": 2})  # 3.6 s scaled
    http.delete(f"/api/v1/compute/cancel/{POLARIS}/{j['id']}")
    time.sleep(0.05)
    one = http.get("/api/v1/account/projects/m0001/project_allocations/m0001.polaris").json()
    assert one["entries"][0]["usage"] > 0
    users = http.get(
        "/api/v1/account/projects/m0001/project_allocations/m0001.polaris/user_allocations"
    ).json()
    assert users[0]["user_id"] == "superfed" and users[0]["entries"] == one["entries"]
    ua = http.get(
        f"/api/v1/account/projects/m0001/project_allocations/m0001.polaris/user_allocations/{users[0]['id']}"
    )
    assert ua.json()["id"] == users[0]["id"]
    assert_problem(http.get("/api/v1/account/projects/m0001/project_allocations/zz"), 404)


# -- compute --------------------------------------------------------------------------------
def test_submit_status_and_pbs_meta_data(http: httpx.Client) -> None:
    j = submit(http, arguments=["-lc", "echo x; sleep 2; exit 3"], name="run.sf-tag1")
    assert j["id"].startswith("1") and ".polaris-pbs-01" in j["id"]
    assert j["status"]["state"] in JOB_STATES
    done = wait_state(http, j["id"], {"failed"})
    st = done["status"]
    assert st["state"] == "failed" and st["exit_code"] == 3
    meta = st["meta_data"]
    assert meta["job_state"] == "F" and meta["Exit_status"] == 3 and meta["queue"] == "debug"
    assert meta["Account_Name"] == "m0001" and meta["Job_Name"] == "run.sf-tag1"
    assert meta["Resource_List"]["filesystems"] == "home:eagle"
    with_spec = job(http, j["id"], include_spec="true")
    assert with_spec["job_spec"]["name"] == "run.sf-tag1"
    assert with_spec["job_spec"]["attributes"]["custom_attributes"] == {"filesystems": "home:eagle"}
    assert "job_spec" not in job(http, j["id"])
    ok = submit(http)
    assert wait_state(http, ok["id"], {"completed"})["status"]["exit_code"] == 0
    # qstat without -x does not show finished jobs
    assert_problem(
        http.get(f"/api/v1/compute/status/{POLARIS}/{ok['id']}", params={"historical": "false"}),
        404,
    )
    assert_problem(
        http.get(f"/api/v1/compute/status/{POLARIS}/999.polaris"),
        404,
        "qstat: Unknown Job Id 999.polaris",
    )


def test_status_list_filters_and_pages(http: httpx.Client) -> None:
    ids = [submit(http, name=f"n{i}", arguments=["-lc", "sleep 1000"])["id"] for i in range(6)]
    listing = http.post(f"/api/v1/compute/status/{POLARIS}")
    assert [j["id"] for j in listing.json()] == ids  # 4 running, 2 queued, none final
    picked = http.post(
        f"/api/v1/compute/status/{POLARIS}", json={"job_ids": [ids[5], ids[1], "42.x"]}
    ).json()
    assert [j["id"] for j in picked] == [ids[1], ids[5]]
    queued = http.post(f"/api/v1/compute/status/{POLARIS}", json={"state": "queued"}).json()
    assert [j["id"] for j in queued] == ids[4:]
    assert [
        j["id"] for j in http.post(f"/api/v1/compute/status/{POLARIS}", json={"name": "n2"}).json()
    ] == [ids[2]]
    page = http.post(f"/api/v1/compute/status/{POLARIS}", params={"offset": 2, "limit": 3}).json()
    assert [j["id"] for j in page] == ids[2:5]
    http.delete(f"/api/v1/compute/cancel/{POLARIS}/{ids[0]}")
    assert ids[0] not in [j["id"] for j in http.post(f"/api/v1/compute/status/{POLARIS}").json()]
    hist = http.post(
        f"/api/v1/compute/status/{POLARIS}", params={"historical": "true", "include_spec": "true"}
    ).json()
    assert (
        hist[0]["id"] == ids[0]
        and hist[0]["status"]["state"] == "canceled"
        and "job_spec" in hist[0]
    )
    assert_problem(http.post(f"/api/v1/compute/status/{POLARIS}", json={"colour": "red"}), 422)
    assert_problem(http.post(f"/api/v1/compute/status/{POLARIS}", params={"limit": 5000}), 400)


def test_update_is_qalter_on_queued_jobs(http: httpx.Client) -> None:
    running = submit(
        http, arguments=["-lc", "sleep 1000"], resources={"node_count": 4}, attributes=PROD
    )
    queued = submit(http, arguments=["-lc", "sleep 1000"])
    r = http.put(
        f"/api/v1/compute/job/{POLARIS}/{queued['id']}",
        json={"name": "renamed", "attributes": {"duration": 1200}},
    )
    assert r.status_code == 200, r.text
    j = job(http, queued["id"], include_spec="true")
    assert j["status"]["meta_data"]["Job_Name"] == "renamed"
    assert j["status"]["meta_data"]["Resource_List"]["walltime"] == "00:20:00"
    assert j["job_spec"]["attributes"]["duration"] == 1200
    over = http.put(
        f"/api/v1/compute/job/{POLARIS}/{queued['id']}", json={"attributes": {"duration": 7200}}
    )
    assert_problem(over, 422, "qalter: Job violates queue and/or server resource limits")
    assert_problem(
        http.put(f"/api/v1/compute/job/{POLARIS}/{running['id']}", json={"name": "x"}),
        409,
        "qalter: Request invalid for state of job",
    )


def test_cancel_is_qdel(http: httpx.Client) -> None:
    j = submit(http, arguments=["-lc", "sleep 1000"])
    r = http.delete(f"/api/v1/compute/cancel/{POLARIS}/{j['id']}")
    assert r.status_code == 204 and r.content == b""
    st = job(http, j["id"])["status"]
    assert st["state"] == "canceled" and st["meta_data"]["job_state"] == "F"
    assert st["meta_data"]["Exit_status"] == 265
    assert_problem(http.delete(f"/api/v1/compute/cancel/{POLARIS}/{j['id']}"), 409)
    assert_problem(
        http.delete(f"/api/v1/compute/cancel/{POLARIS}/77.polaris"),
        404,
        "qdel: Unknown Job Id 77.polaris",
    )
    assert_problem(http.delete(f"/api/v1/compute/cancel/{EAGLE}/{j['id']}"), 404)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attributes": {"account": None}}, "qsub: Account_Name is required to be set."),
        (
            {"attributes": {"custom_attributes": {}}},
            "qsub: Resource: filesystems is required to be set.",
        ),
        ({"attributes": {"duration": None}}, "qsub: Resource: walltime is required to be set."),
        ({"attributes": {"duration": 7200}}, "qsub: Job rejected by all possible destinations"),
        ({"resources": {"node_count": 3}}, "qsub: Job rejected by all possible destinations"),
        (
            {"attributes": {"queue_name": "prod", "duration": 90000}},
            "qsub: Job rejected by all possible destinations",
        ),
        (
            {"attributes": {"queue_name": "prod"}, "resources": {"node_count": 5}},
            "qsub: Job rejected by all possible destinations",
        ),
        ({"attributes": {"queue_name": "nosuch"}}, "qsub: Unknown queue"),
        (
            {"attributes": {"custom_attributes": {"filesystems": "home:tmp"}}},
            "qsub: Illegal attribute or resource value",
        ),
        ({"attributes": {"account": "someone-else"}}, "qsub: Unauthorized Request"),
    ],
)
def test_alcf_qsub_rejections(http: httpx.Client, change: dict[str, Any], message: str) -> None:
    body = assert_problem(
        http.post(f"/api/v1/compute/job/{POLARIS}", json=spec_body(**change)), 422, message
    )
    assert body["type"].endswith("/job-rejected")
    assert http.get("/_sim/jobs").json()["jobs"] == []


def test_bad_job_specs_are_422_or_400_never_500(http: httpx.Client) -> None:
    url = f"/api/v1/compute/job/{POLARIS}"
    body = assert_problem(http.post(url, json={**spec_body(), "bogus": 1}), 422)
    assert body["invalid_params"][0]["reason"].startswith("Object contains unknown field")
    body = assert_problem(http.post(url, json=spec_body(resources={"node_count": 0})), 422)
    assert body["invalid_params"][0]["name"] == "resources.node_count"
    assert_problem(http.post(url, json={"arguments": ["x"]}), 422, "Executable must be provided")
    assert_problem(http.post(url, content=b"{not json"), 400)
    for bad in (b"[]", b'"x"', b"null", b"1e999", b'{"arguments": "x"}', b'{"name": ""}', b""):
        r = http.post(url, content=bad, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (bad, r.text)
    assert_problem(http.post("/api/v1/compute/job/nope", json=spec_body()), 404)
    assert_problem(
        http.get(f"/api/v1/compute/status/{POLARIS}/1", params={"historical": "maybe"}), 400
    )


# -- filesystem tasks -----------------------------------------------------------------------
def test_filesystem_operations_as_tasks(http: httpx.Client) -> None:
    fs = "/api/v1/filesystem"
    out = run_task(
        http, http.post(f"{fs}/mkdir/{EAGLE}", json={"path": "/eagle/m0001/a/b", "parent": True})
    )
    assert out["output"]["type"] == "directory"
    data = b"line1\nline2\nline3\n"
    assert (
        http.post(
            f"{fs}/upload/{EAGLE}",
            params={"path": "/eagle/m0001/a/f.txt"},
            files={"file": ("f.txt", data)},
        ).status_code
        == 200
    )
    time.sleep(0.01)
    ls = run_task(http, http.get(f"{fs}/ls/{EAGLE}", params={"path": "/lus/eagle/m0001/a"}))[
        "output"
    ]
    assert [(e["name"], e["type"], e["size"]) for e in ls] == [
        ("b", "directory", "4096"),
        ("f.txt", "file", "18"),
    ]
    deep = run_task(
        http, http.get(f"{fs}/ls/{EAGLE}", params={"path": "/eagle/m0001", "recursive": "true"})
    )
    assert "a/f.txt" in [e["name"] for e in deep["output"]]
    f = "/eagle/m0001/a/f.txt"
    head = run_task(http, http.get(f"{fs}/head/{EAGLE}", params={"path": f, "lines": 2}))["output"]
    assert head == {
        "content": "line1\nline2\n",
        "content_type": "lines",
        "start_position": 0,
        "end_position": 2,
    }
    tail = run_task(http, http.get(f"{fs}/tail/{EAGLE}", params={"path": f, "bytes": 6}))["output"]
    assert tail["content"] == "line3\n" and tail["content_type"] == "bytes"
    view = run_task(
        http, http.get(f"{fs}/view/{EAGLE}", params={"path": f, "offset": 6, "size": 5})
    )["output"]
    assert view["content"] == "line2"
    import hashlib

    chk = run_task(http, http.get(f"{fs}/checksum/{EAGLE}", params={"path": f}))["output"]
    assert chk == {"algorithm": "SHA-256", "checksum": hashlib.sha256(data).hexdigest()}
    assert (
        run_task(http, http.get(f"{fs}/file/{EAGLE}", params={"path": f}))["output"] == "ASCII text"
    )
    assert (
        run_task(http, http.get(f"{fs}/stat/{EAGLE}", params={"path": f}))["output"]["size"] == 18
    )
    import base64

    dl = run_task(http, http.get(f"{fs}/download/{EAGLE}", params={"path": f}))
    assert base64.b64decode(dl["output"]) == data and dl["encoding"] == "base64"
    run_task(http, http.put(f"{fs}/chmod/{EAGLE}", json={"path": f, "mode": "600"}))
    assert (
        run_task(http, http.get(f"{fs}/ls/{EAGLE}", params={"path": f}))["output"][0]["permissions"]
        == "rw-------"
    )
    run_task(
        http, http.put(f"{fs}/chown/{EAGLE}", json={"path": f, "owner": "root"}), expect="failed"
    )
    run_task(
        http, http.post(f"{fs}/cp/{EAGLE}", json={"path": f, "target_path": "/eagle/m0001/g.txt"})
    )
    run_task(
        http,
        http.post(
            f"{fs}/mv/{EAGLE}",
            json={"path": "/eagle/m0001/g.txt", "target_path": "/eagle/m0001/a/b"},
        ),
    )
    run_task(
        http,
        http.post(
            f"{fs}/compress/{EAGLE}",
            json={"path": "/eagle/m0001/a", "target_path": "/eagle/m0001/a.tgz"},
        ),
    )
    run_task(
        http,
        http.post(
            f"{fs}/extract/{EAGLE}",
            json={"path": "/eagle/m0001/a.tgz", "target_path": "/eagle/m0001/x"},
        ),
    )
    names = {
        e["name"]
        for e in run_task(
            http,
            http.get(f"{fs}/ls/{EAGLE}", params={"path": "/eagle/m0001/x", "recursive": "true"}),
        )["output"]
    }
    assert {"a/f.txt", "a/b/g.txt"} <= names
    run_task(
        http,
        http.post(f"{fs}/symlink/{EAGLE}", json={"path": f, "link_path": "/eagle/m0001/l"}),
        expect="failed",
    )
    run_task(http, http.delete(f"{fs}/rm/{EAGLE}", params={"path": "/eagle/m0001/x"}))
    gone = run_task(
        http, http.get(f"{fs}/ls/{EAGLE}", params={"path": "/eagle/m0001/x"}), expect="failed"
    )
    assert gone["status_code"] == 404 and "No such file or directory" in gone["output"]
    # home is its own resource; paths elsewhere are refused
    run_task(http, http.get(f"{fs}/ls/{HOME}", params={"path": "/home/superfed"}))
    assert_problem(http.get(f"{fs}/ls/{EAGLE}", params={"path": "/home/superfed"}), 400)
    assert_problem(http.get(f"{fs}/ls/{POLARIS}", params={"path": "/eagle"}), 404)
    assert_problem(http.get(f"{fs}/head/{EAGLE}", params={"path": f}), 400)
    assert_problem(http.get(f"{fs}/ls/{EAGLE}"), 400)


def test_task_endpoints(http: httpx.Client) -> None:
    ref = http.get(f"/api/v1/filesystem/ls/{EAGLE}", params={"path": "/eagle"}).json()
    tasks = http.get("/api/v1/task").json()
    assert [t["id"] for t in tasks] == [ref["task_id"]]
    assert tasks[0]["command"]["command"] == "ls" and tasks[0]["status"] in ("pending", "completed")
    r = http.delete(f"/api/v1/task/{ref['task_id']}")
    assert r.status_code == 200 and r.json() == f"Task {ref['task_id']} deleted successfully"
    assert_problem(http.get(f"/api/v1/task/{ref['task_id']}"), 404)
    assert_problem(http.delete("/api/v1/task/nope"), 404)


def test_tar_roundtrip_in_every_compression(http: httpx.Client) -> None:
    http.post(
        f"/api/v1/filesystem/upload/{HOME}",
        params={"path": "/home/superfed/t.txt"},
        files={"file": ("t.txt", b"tar me")},
    )
    for kind in ("none", "gzip", "bzip2", "xz"):
        target = f"/home/superfed/t.{kind}.tar"
        run_task(
            http,
            http.post(
                f"/api/v1/filesystem/compress/{HOME}",
                json={"path": "/home/superfed/t.txt", "target_path": target, "compression": kind},
            ),
        )
        dl = run_task(
            http, http.get(f"/api/v1/filesystem/download/{HOME}", params={"path": target})
        )
        import base64

        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(dl["output"]))) as tar:
            assert tar.getnames() == ["t.txt"]


# -- chaos ------------------------------------------------------------------------------------
def test_chaos_errors_come_in_the_problem_shape(http: httpx.Client) -> None:
    http.post(
        "/_sim/chaos", json={"error_rate": 1.0, "status": 503, "retry_after": 2}
    ).raise_for_status()
    r = http.get("/api/v1/status/resources")
    assert_problem(r, 503)
    assert r.headers["retry-after"] == "2"
    http.post("/_sim/chaos", json={}).raise_for_status()
    assert http.get("/api/v1/status/resources").status_code == 200


def test_garbage_queries_never_500(http: httpx.Client) -> None:
    probes = [
        ("GET", "/api/v1/status/resources", {"limit": "-1"}),
        ("GET", "/api/v1/status/resources", {"offset": "x"}),
        ("GET", "/api/v1/status/incidents", {"from": "not-a-date"}),
        ("GET", "/api/v1/status/incidents", {"type": "weird"}),
        ("GET", "/api/v1/status/events", {"status": "weird"}),
        ("GET", "/api/v1/filesystem/view/" + EAGLE, {"path": "/eagle", "size": "0"}),
        ("GET", "/api/v1/filesystem/head/" + EAGLE, {"path": "/eagle/../../etc", "lines": "1"}),
        ("POST", f"/api/v1/compute/status/{POLARIS}", {"offset": "-3"}),
    ]
    for method, path, params in probes:
        r = http.request(method, path, params=params)
        assert 400 <= r.status_code < 500, (path, params, r.text)
    r = http.post(
        f"/api/v1/compute/status/{POLARIS}",
        content=b"[1,2]",
        headers={"content-type": "application/json"},
    )
    assert 400 <= r.status_code < 500
    r = http.post(
        f"/api/v1/filesystem/mkdir/{EAGLE}",
        content=b"{",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    r = http.post(
        f"/api/v1/filesystem/upload/{EAGLE}",
        params={"path": "/eagle/m0001/u"},
        data={"nofile": "1"},
    )
    assert 400 <= r.status_code < 500
