"""Portable jobs end to end on `superfed demo` (issue 10's judge): jobs with no site-specific
attributes and no placement, translated by each site's profile, against simulators that
enforce their facility's published rules."""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Broker, start_demo

pytestmark = pytest.mark.slow

KIND_OF_SITE = {"nersc": "sfapi", "cscs": "firecrest", "alcf": "iri"}
FINAL = {"COMPLETED", "FAILED", "CANCELED"}
PROJECT = "beamline"  # the demo maps it to the facility account m0002 at every site
ACCOUNT = "m0002"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = start_demo(tmp_path_factory.mktemp("portable"))
    try:
        yield b
    finally:
        b.proc.stop()


def portable(command: str = "sleep 1", nodes: int = 1, seconds: int = 600, gpus: int | None = None) -> dict:
    resources: dict[str, Any] = {"node_count": nodes}
    if gpus:
        resources["gpu_cores_per_process"] = gpus
    return {
        "executable": "/bin/bash",
        "arguments": ["-c", command],
        "resources": resources,
        "attributes": {"duration": seconds},
    }


async def post_all(b: Broker, specs: list[dict], project: str = PROJECT) -> list[httpx.Response]:
    async with httpx.AsyncClient(
        base_url=b.api, headers=b.headers(), timeout=120, limits=httpx.Limits(max_connections=50)
    ) as c:
        return list(
            await asyncio.gather(*[c.post("/api/v1/jobs", json={"project": project, "spec": s}) for s in specs])
        )


def accepted(rs: list[httpx.Response]) -> list[str]:
    assert all(r.status_code == 202 for r in rs), [r.text for r in rs if r.status_code != 202][:3]
    return [r.json()["id"] for r in rs]


def sim_jobs(b: Broker) -> dict[str, dict[str, dict]]:
    """Every facility's jobs, by kind and native id (PBS ids read "<seq>.<server>")."""
    out = {}
    for kind, url in b.info["simulators"].items():
        out[kind] = {str(j["id"]): j for j in httpx.get(f"{url}/_sim/jobs", timeout=10).json()["jobs"]}
    return out


def native(job: dict) -> str:
    return str(job["native_id"]).split(".")[0]


def replace_site(b: Broker, name: str, **changes: Any) -> None:
    """PUT a site with changed fields, as an admin edits one: GET its config (credentials by
    name), change, PUT with the ETag."""
    with httpx.Client(base_url=b.api, headers=b.headers("admin"), timeout=30) as c:
        current = c.get(f"/api/v1/sites/{name}/config")
        site = current.json()["config"]
        r = c.put(f"/api/v1/sites/{name}", json={**site, **changes}, headers={"If-Match": current.headers["ETag"]})
        assert r.status_code == 200, r.text


def test_200_portable_jobs_complete_once_each_over_all_three_sites(broker: Broker) -> None:
    t0 = time.monotonic()
    ids = accepted(asyncio.run(post_all(broker, [portable() for _ in range(200)])))
    posted = time.monotonic() - t0
    jobs = broker.wait_jobs(ids, FINAL, timeout=400)
    took = time.monotonic() - t0
    bad = {j: (v["state"], v["message"]) for j, v in jobs.items() if v["state"] != "COMPLETED"}
    assert not bad, list(bad.items())[:5]
    per_site = Counter(j["site"] for j in jobs.values())
    assert set(per_site) == {"nersc", "cscs", "alcf"}, per_site
    held = sim_jobs(broker)
    for site, kind in KIND_OF_SITE.items():
        ours = [native(j) for j in jobs.values() if j["site"] == site]
        # exactly one facility job per broker job (this is the module's first test: the
        # simulators hold nothing else)
        assert len(ours) == len(set(ours)) and sorted(ours) == sorted(held[kind]), (site, len(ours), len(held[kind]))
        mine = held[kind]
        # charged to the site's mapping of the project, not the broker project's name
        assert {j["account"] for j in mine.values()} == {ACCOUNT}, site
    # the facility's own words: a QOS and -C cpu at NERSC, debug queue and filesystems at ALCF
    nersc = [held["sfapi"][native(j)] for j in jobs.values() if j["site"] == "nersc"]
    assert {j["partition"] for j in nersc} == {"debug"}
    assert all("--constraint=cpu" in j["script"] and "--qos=debug" in j["script"] for j in nersc)
    alcf = [held["iri"][native(j)] for j in jobs.values() if j["site"] == "alcf"]
    assert {j["partition"] for j in alcf} == {"debug"}
    cscs = [held["firecrest"][native(j)] for j in jobs.values() if j["site"] == "cscs"]
    assert {j["partition"] for j in cscs} == {"debug"}
    print(f"\n200 portable jobs: posted in {posted:.1f} s, all COMPLETED after {took:.1f} s, per site {dict(per_site)}")


def test_the_preview_shows_each_sites_request_in_its_words(broker: Broker) -> None:
    with broker.client() as c:
        r = c.post("/api/v1/placement", json={"project": PROJECT, "spec": portable()})
    assert r.status_code == 200, r.text
    translated = {x["site"]: x.get("translated") for x in r.json()["ranking"]}
    assert translated == {
        "nersc": "perlmutter: qos debug, -C cpu, 1 node, 10 min",
        "alcf": "polaris: queue debug, 1 node, 10 min, filesystems=home:eagle",
        "cscs": "daint: partition debug, 1 node, 10 min",
    }


def test_a_job_only_one_queue_takes_lands_there(broker: Broker) -> None:
    # 30 nodes for 30 h: only NERSC's regular QOS (48 h); ALCF's prod allows 6 h at 30 nodes,
    # CSCS's normal 24 h. 30 nodes for 6 h: every site has a queue, and each uses it.
    [long_id] = accepted(asyncio.run(post_all(broker, [portable("sleep 1", 30, 30 * 3600)])))
    wide = accepted(asyncio.run(post_all(broker, [portable("sleep 1", 30, 6 * 3600) for _ in range(6)])))
    jobs = broker.wait_jobs([long_id, *wide], FINAL, timeout=180)
    assert jobs[long_id]["state"] == "COMPLETED" and jobs[long_id]["site"] == "nersc"
    held = sim_jobs(broker)
    assert held["sfapi"][native(jobs[long_id])]["partition"] == "regular"
    queue_of = {"nersc": "regular", "alcf": "prod", "cscs": "normal"}
    for jid in wide:
        j = jobs[jid]
        assert j["state"] == "COMPLETED", (j["state"], j["message"])
        assert held[KIND_OF_SITE[j["site"]]][native(j)]["partition"] == queue_of[j["site"]]


def test_jobs_no_site_can_take_get_422_with_every_sites_reason(broker: Broker) -> None:
    with broker.client() as c:
        r = c.post("/api/v1/jobs", json={"project": PROJECT, "spec": portable(nodes=30, seconds=100 * 3600)})
        assert r.status_code == 422, r.text
        body = r.json()
        assert {e["message"].split(":")[0] for e in body["errors"]} == {"nersc", "cscs", "alcf"}, body
        # nothing was stored
        assert c.get("/api/v1/jobs", params={"project": PROJECT, "state": "NEW"}).json()["items"] == []
        # another project's account (the mapping allows only m0002 for this project)
        r = c.post(
            "/api/v1/jobs",
            json={"project": PROJECT, "spec": {**portable(), "attributes": {"duration": 600, "account": "m0001"}}},
        )
        assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} == {"spec.attributes.account"}
        r = c.post(
            "/api/v1/jobs",
            json={
                "project": PROJECT,
                "spec": {
                    **portable(),
                    "attributes": {"duration": 600, "custom_attributes": {"slurm.account": "m0001"}},
                },
            },
        )
        assert r.status_code == 422
        assert {e["field"] for e in r.json()["errors"]} == {"spec.attributes.custom_attributes.slurm.account"}


def test_gpu_jobs_go_only_where_gpus_are(broker: Broker) -> None:
    # CSCS told it has CPU nodes only (Eiger's), as its profile: GPU jobs must avoid it
    eiger_like = {
        "node_types": [{"name": "zen2", "cores": 128, "gpus": 0, "memory_gb": 256}],
        "queues": [
            {"name": "debug", "max_nodes": 2, "max_walltime": 1800},
            {"name": "normal", "max_nodes": 64, "max_walltime": 86400},
        ],
    }
    replace_site(broker, "cscs", profiles={"daint": eiger_like})
    try:
        ids = accepted(asyncio.run(post_all(broker, [portable(gpus=1) for _ in range(12)])))
        jobs = broker.wait_jobs(ids, FINAL, timeout=180)
    finally:
        cfg = tomllib.loads((broker.workdir / "superfed.toml").read_text())
        [cscs] = [s for s in cfg["sites"] if s["name"] == "cscs"]
        replace_site(broker, "cscs", profiles=cscs["profiles"])
    held = sim_jobs(broker)
    assert all(j["state"] == "COMPLETED" for j in jobs.values()), [j["message"] for j in jobs.values()][:3]
    assert "cscs" not in {j["site"] for j in jobs.values()}
    for j in jobs.values():
        if j["site"] == "nersc":
            assert "--constraint=gpu" in held["sfapi"][native(j)]["script"]


def test_a_site_that_refuses_everything_is_demoted_and_nothing_fails(broker: Broker) -> None:
    # ALCF's profile no longer matches its facility: `filesystems` is not filled in any more,
    # so qsub refuses every job ("filesystems is required")
    cfg = tomllib.loads((broker.workdir / "superfed.toml").read_text())
    [alcf] = [s for s in cfg["sites"] if s["name"] == "alcf"]
    broken = {"polaris": {k: v for k, v in alcf["profiles"]["polaris"].items() if k != "defaults"}}
    replace_site(broker, "alcf", profiles=broken)
    try:
        ids = accepted(asyncio.run(post_all(broker, [portable() for _ in range(60)])))
        jobs = broker.wait_jobs(ids, FINAL, timeout=300)
        bad = {j: (v["state"], v["message"]) for j, v in jobs.items() if v["state"] != "COMPLETED"}
        assert not bad, list(bad.items())[:5]
        assert "alcf" not in {j["site"] for j in jobs.values()}
        refused = [j for j in jobs.values() if any(a["outcome"] == "rejected" for a in j["attempts"])]
        assert refused, "no job was ever sent to the refusing site"
        for j in refused:
            [r] = [a for a in j["attempts"] if a["outcome"] == "rejected"]
            assert r["site"] == "alcf" and "filesystems is required" in r["error"]
        with broker.client("viewer") as c:
            status = {s["site"]: s for s in c.get("/api/v1/status").json()["sites"]}
            assert status["alcf"]["demoted"] and "refused" in status["alcf"]["demoted"]
            assert status["nersc"].get("demoted") is None
        with broker.client() as c:
            preview = c.post("/api/v1/placement", json={"project": PROJECT, "spec": portable()}).json()
        assert preview["ranking"][-1]["site"] == "alcf"
        assert "demoted" in preview["ranking"][-1]["reasons"][0]
        metrics = httpx.get(f"{broker.api}/metrics").text
        assert 'superfed_site_demoted{site="alcf"} 1.0' in metrics
        # a job pinned to the refusing site fails there, with the facility's own words
        with broker.client() as c:
            r = c.post("/api/v1/jobs", json={"project": PROJECT, "spec": portable(), "placement": {"site": "alcf"}})
            assert r.status_code == 202, r.text
        pinned = broker.wait_jobs([r.json()["id"]], FINAL, timeout=120)[r.json()["id"]]
        assert pinned["state"] == "FAILED" and "filesystems is required" in pinned["message"]
        assert [a["outcome"] for a in pinned["attempts"]] == ["rejected"]
    finally:
        replace_site(broker, "alcf", profiles=alcf["profiles"])
