"""Issue 4's judge: real processes end to end (redis-server, three simulators, API, two workers)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest

from tests.e2e.conftest import Broker
from tests.support.servers import wait_until

pytestmark = pytest.mark.slow


def spec(command: str, nodes: int = 1, name: str | None = None) -> dict:
    s = {
        "executable": "/bin/bash",
        "arguments": ["-c", command],
        "resources": {"node_count": nodes},
        "attributes": {"duration": 3600},
    }
    if name:
        s["name"] = name
    return s


async def post_many(b: Broker, n: int, command: str, project: str = "m0001") -> list[str]:
    async with httpx.AsyncClient(
        base_url=b.api, headers=b.headers(), timeout=60, limits=httpx.Limits(max_connections=50)
    ) as c:
        rs = await asyncio.gather(
            *[
                c.post("/api/v1/jobs", json={"project": project, "spec": spec(command, name=f"e2e-{i}")})
                for i in range(n)
            ]
        )
    assert all(r.status_code == 202 for r in rs), [r.text for r in rs if r.status_code != 202][:3]
    return [r.json()["id"] for r in rs]


def sim_jobs(b: Broker) -> dict[str, list[dict]]:
    return {
        kind: httpx.get(f"{url}/_sim/jobs", timeout=10).json()["jobs"] for kind, url in b.info["simulators"].items()
    }


KIND_OF_SITE = {"nersc": "sfapi", "cscs": "firecrest", "alcf": "iri"}


def test_hundred_jobs_complete_once_each_spread_over_sites(broker: Broker) -> None:
    ids = asyncio.run(post_many(broker, 100, "sleep 2"))
    jobs = broker.wait_jobs(ids, {"COMPLETED", "FAILED", "CANCELED"}, timeout=180)
    bad = {j: (v["state"], v["message"]) for j, v in jobs.items() if v["state"] != "COMPLETED"}
    assert not bad, list(bad.items())[:5]
    per_site = Counter(j["site"] for j in jobs.values())
    assert set(per_site) == {"nersc", "cscs", "alcf"}, per_site
    # exactly one facility job per broker job, checked at the facilities themselves
    held = sim_jobs(broker)
    for site, kind in KIND_OF_SITE.items():
        natives = [str(j["id"]) for j in held[kind]]
        # PBS ids read "<seq>.<server>" (ALCF); the simulator lists the sequence number
        ours = [j["native_id"].split(".")[0] for j in jobs.values() if j["site"] == site]
        assert len(natives) == len(set(natives))
        assert sorted(ours) == sorted(natives), (site, len(ours), len(natives))
    for j in jobs.values():
        assert j["exit_code"] == 0
        assert [a["outcome"] for a in j["attempts"]][-1] in ("submitted", "settled")
        assert j["history"][0]["state"] == "NEW" and j["history"][-1]["state"] == "COMPLETED"


def test_exit_code_is_reported(broker: Broker) -> None:
    ids = asyncio.run(post_many(broker, 3, "sleep 1; exit 3"))
    jobs = broker.wait_jobs(ids, {"COMPLETED", "FAILED", "CANCELED"}, timeout=120)
    for j in jobs.values():
        assert j["state"] == "FAILED", (j["state"], j["native_state"], j["message"])
        assert j["exit_code"] == 3


def test_cancel_reaches_the_facility(broker: Broker) -> None:
    [jid] = asyncio.run(post_many(broker, 1, "sleep 600"))
    broker.wait_jobs([jid], {"QUEUED", "ACTIVE"}, timeout=60)
    with broker.client() as c:
        r = c.delete(f"/api/v1/jobs/{jid}")
        assert r.status_code == 202
    job = broker.wait_jobs([jid], {"CANCELED", "COMPLETED", "FAILED"}, timeout=60)[jid]
    assert job["state"] == "CANCELED"
    held = sim_jobs(broker)[KIND_OF_SITE[job["site"]]]
    [native] = [j for j in held if str(j["id"]) == job["native_id"].split(".")[0]]
    assert native["state"] == "CANCELLED"
    with broker.client() as c:
        again = c.delete(f"/api/v1/jobs/{jid}").json()
    assert again["state"] == "CANCELED" and "already" in again["detail"]


def test_a_job_cancelled_at_a_pbs_site_says_what_its_exit_means(broker: Broker) -> None:
    """PBS reports a job qdel ended as exit 265 (256 + SIGKILL): the job's message says so,
    and so does `superfed jobs`."""
    import msgspec

    from broker.cli_api import job_line
    from broker.schemas import Job

    with broker.client() as c:
        r = c.post("/api/v1/jobs", json={"project": "m0001", "spec": spec("sleep 600"), "placement": {"site": "alcf"}})
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        broker.wait_jobs([jid], {"QUEUED", "ACTIVE"}, timeout=60)
        assert c.delete(f"/api/v1/jobs/{jid}").status_code == 202
    job = broker.wait_jobs([jid], {"CANCELED", "COMPLETED", "FAILED"}, timeout=60)[jid]
    assert (job["state"], job["site"], job["exit_code"]) == ("CANCELED", "alcf", 265), job
    why = "; exit 265: killed by SIGKILL, as qdel does (PBS reports 256 + the signal's number, 9)"
    assert job["message"].endswith(why), job
    assert job_line(msgspec.convert(job, Job)).endswith(f" exit=265 ({job['message']})")


HOMES = {"nersc": "/global/homes/s/superfed", "cscs": "/home/superfed", "alcf": "/home/superfed"}


def test_files_and_projects_through_the_adapters(broker: Broker) -> None:
    with broker.client() as c:
        for site, home in HOMES.items():
            path = f"{home}/superfed-e2e-{site}.txt"
            put = c.put(f"/api/v1/sites/{site}/files/content", params={"path": path, "project": "m0001"},
                        content=b"hello " + site.encode())
            assert put.status_code == 204, (site, put.text)
            got = c.get(f"/api/v1/sites/{site}/files/content", params={"path": path, "project": "m0001"})
            assert got.status_code == 200 and got.content == b"hello " + site.encode(), (site, got.text)
            listing = c.get(f"/api/v1/sites/{site}/files", params={"path": home, "project": "m0001"})
            assert listing.status_code == 200, (site, listing.text)
            entry = {e["name"]: e for e in listing.json()}[f"superfed-e2e-{site}.txt"]
            assert entry["type"] == "file" and entry["size"] == len(b"hello ") + len(site)
            missing = c.get(f"/api/v1/sites/{site}/files", params={"path": f"{home}/no/such/dir", "project": "m0001"})
            assert missing.status_code == 404, (site, missing.status_code, missing.text)
            up = c.get(f"/api/v1/sites/{site}/files", params={"path": f"{home}/../../etc", "project": "m0001"})
            assert up.status_code == 400
        projects = c.get("/api/v1/projects").json()
    by_name = {p["project"]: {s["site"] for s in p["sites"]} for p in projects}
    # FirecREST v2 has no accounting endpoint; the other two report node-hours
    assert {"nersc", "alcf"} <= by_name["m0001"], projects


def test_status_events_stream_a_change(broker: Broker) -> None:
    import threading

    got: list[str] = []

    def listen() -> None:
        with httpx.stream(
            "GET", f"{broker.api}/api/v1/status/events", headers=broker.headers("viewer"), timeout=20
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data:") and '"cscs"' in line:
                    got.append(line)
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    time.sleep(0.5)
    url = broker.sim("firecrest")
    httpx.post(f"{url}/_sim/outage", json={"component": "compute", "state": "degraded"}, timeout=10)
    try:
        t.join(15)
        assert got, "no event within 15 s of a state change"
        assert '"state":"degraded"' in got[0].replace(" ", "")
    finally:
        httpx.post(f"{url}/_sim/outage", json={"component": "compute", "state": "up"}, timeout=10)


def test_outage_sends_no_new_jobs_to_the_down_site(broker: Broker) -> None:
    down = "nersc"
    r = httpx.post(f"{broker.sim('sfapi')}/_sim/outage", json={"component": "compute", "state": "down"}, timeout=10)
    assert r.status_code == 200
    try:
        # one health interval (2 s in the demo config), plus the time a check takes
        with broker.client("viewer") as c:
            wait_until(
                lambda: {s["site"]: s["state"] for s in c.get("/api/v1/status").json()["sites"]}[down] == "down",
                timeout=10, interval=0.2, what=f"{down} reading down",
            )  # fmt: skip
        ids = asyncio.run(post_many(broker, 30, "sleep 1"))
        jobs = broker.wait_jobs(ids, {"COMPLETED"}, timeout=120)
        sites = Counter(j["site"] for j in jobs.values())
        assert down not in sites, sites
        assert set(sites) <= {"cscs", "alcf"} and sum(sites.values()) == 30
        with broker.client() as c:
            preview = c.post("/api/v1/placement", json={"project": "m0001", "spec": spec("true")}).json()
        why = {r["site"]: r for r in preview["ranking"]}
        assert not why[down]["eligible"] and any("down" in x for x in why[down]["reasons"])
    finally:
        httpx.post(f"{broker.sim('sfapi')}/_sim/outage", json={"component": "compute", "state": "up"}, timeout=10)
