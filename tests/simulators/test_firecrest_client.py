"""The official client (pyfirecrest v2, sync and async, unmodified) against the simulator,
with every response validated against the FirecREST v2 OpenAPI spec."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import anyio
import firecrest
import pytest
from firecrest.FirecrestException import ClientsCredentialsException, FirecrestException

from simulators.common.facility import SimSettings
from simulators.firecrest import create_app
from tests.support.openapi import ValidatingASGI, load_spec
from tests.support.servers import ThreadedServer

CLIENT_ID, SECRET, USER = "superfed-client", "s3cret", "alice"
SYSTEM = "daint"


class Sim:
    def __init__(self, url: str, wrapper: ValidatingASGI):
        self.url = url
        self.wrapper = wrapper
        self.token_uri = f"{url}/auth/token"

    def auth(self, **kw: object) -> firecrest.ClientCredentialsAuth:
        return firecrest.ClientCredentialsAuth(CLIENT_ID, SECRET, self.token_uri, **kw)  # type: ignore[arg-type]

    def client(self) -> firecrest.v2.Firecrest:
        return firecrest.v2.Firecrest(firecrest_url=self.url, authorization=self.auth())


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    settings = SimSettings(
        systems=[SYSTEM, "eiger"],
        nodes=8,
        time_scale=0.02,
        user=USER,
        client_id=CLIENT_ID,
        client_secret=SECRET,
    )
    wrapper = ValidatingASGI(
        create_app(settings),
        load_spec("firecrest-v2/openapi-latest.yaml"),
        skip_prefixes=("/_sim", "/auth/token"),
    )
    with ThreadedServer(wrapper) as server:
        yield Sim(server.url, wrapper)
    # every response any test in this module saw matched the spec
    assert wrapper.errors == []
    assert wrapper.validated > 0


@pytest.fixture(autouse=True)
def _reset(sim: Sim) -> None:
    import httpx

    httpx.post(f"{sim.url}/_sim/reset").raise_for_status()


def test_systems_report_health(sim: Sim) -> None:
    systems = sim.client().systems()
    assert [s["name"] for s in systems] == [SYSTEM, "eiger"]
    health = {h["serviceType"]: h["healthy"] for h in systems[0]["servicesHealth"]}
    assert health == {"scheduler": True, "ssh": True, "filesystem": True}
    assert any(fs["defaultWorkDir"] for fs in systems[0]["fileSystems"])


def test_partitions_nodes_userinfo(sim: Sim) -> None:
    c = sim.client()
    parts = {p["name"]: p for p in c.partitions(SYSTEM)}
    assert parts["normal"]["totalNodes"] == 8 and parts["debug"]["totalNodes"] == 2
    assert len(c.nodes(SYSTEM)) == 8
    assert c.reservations(SYSTEM) == []
    assert c.userinfo(SYSTEM)["user"]["name"] == USER


def test_submit_info_wait_metadata(sim: Sim) -> None:
    c = sim.client()
    script = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --time=00:10:00\n"
    script += "#SBATCH --comment=superfed:t1\nsleep 5\necho A=$A on $SLURM_NNODES nodes, job $SLURM_JOB_ID\n"
    job_id = c.submit(SYSTEM, working_dir=f"/home/{USER}", script_str=script, env_vars={"A": "1"})[
        "jobId"
    ]
    info = c.job_info(SYSTEM, job_id)
    assert info[0]["jobId"] == job_id
    assert info[0]["allocationNodes"] == 2 and info[0]["time"]["limit"] == 600
    done = c.wait_for_job(SYSTEM, job_id, timeout=20)
    assert done[0]["status"]["state"] == "COMPLETED" and done[0]["status"]["exitCode"] == 0
    meta = c.job_metadata(SYSTEM, job_id)[0]
    assert meta["script"] == script
    assert meta["standardOutput"] == f"/home/{USER}/slurm-{job_id}.out"
    # the output file holds what the script printed, with Slurm's variables and the job's env
    assert c.view(SYSTEM, meta["standardOutput"]) == f"A=1 on 2 nodes, job {job_id}\n"
    assert any(j["jobId"] == job_id for j in c.job_info(SYSTEM))


def test_exit_code_and_partition_override(sim: Sim) -> None:
    c = sim.client()
    job_id = c.submit(
        SYSTEM,
        working_dir=f"/home/{USER}",
        script_str="#!/bin/bash\nexit 3\n",
        partition="debug",
        account="m0001",
    )["jobId"]
    done = c.wait_for_job(SYSTEM, job_id, timeout=20)[0]
    assert done["status"]["state"] == "FAILED" and done["status"]["exitCode"] == 3
    assert done["partition"] == "debug" and done["account"] == "m0001"


def test_cancel(sim: Sim) -> None:
    c = sim.client()
    job_id = c.submit(SYSTEM, working_dir=f"/home/{USER}", script_str="#!/bin/bash\nsleep 10000\n")[
        "jobId"
    ]
    c.cancel_job(SYSTEM, job_id)
    state = c.job_info(SYSTEM, job_id)[0]["status"]["state"]
    assert state.startswith("CANCELLED")
    c.cancel_job(SYSTEM, job_id)  # already final: nothing happens


def test_files_list_upload_download(sim: Sim, tmp_path: Path) -> None:
    c = sim.client()
    home = f"/home/{USER}"
    c.mkdir(SYSTEM, f"{home}/run1/in", create_parents=True)
    c.upload(SYSTEM, io.BytesIO(b"hello firecrest\n"), f"{home}/run1", "data.txt", file_size=16)
    names = {f["name"]: f for f in c.list_files(SYSTEM, f"{home}/run1")}
    assert names["data.txt"]["size"] == "16" and names["in"]["type"] == "d"
    assert ".bashrc" not in {f["name"] for f in c.list_files(SYSTEM, home)}
    assert ".bashrc" in {f["name"] for f in c.list_files(SYSTEM, home, show_hidden=True)}
    local = tmp_path / "copy.txt"
    c.download(SYSTEM, f"{home}/run1/data.txt", local)
    assert local.read_bytes() == b"hello firecrest\n"
    assert c.stat(SYSTEM, f"{home}/run1/data.txt")["size"] == 16
    import hashlib

    assert (
        c.checksum(SYSTEM, f"{home}/run1/data.txt")["checksum"]
        == hashlib.sha256(b"hello firecrest\n").hexdigest()
    )
    assert c.head(SYSTEM, f"{home}/run1/data.txt")["content"] == "hello firecrest\n"
    c.rm(SYSTEM, f"{home}/run1/data.txt")
    with pytest.raises(FileNotFoundError):
        c.download(SYSTEM, f"{home}/run1/data.txt", local)


def test_unknown_system_and_job_raise(sim: Sim) -> None:
    c = sim.client()
    with pytest.raises(FirecrestException) as err:
        c.submit("nosuch", working_dir="/home", script_str="#!/bin/bash\n")
    assert err.value.responses[-1].status_code == 404
    assert err.value.responses[-1].json()["message"] == "System not found"
    with pytest.raises(FirecrestException) as err:
        c.job_info(SYSTEM, "99999999")
    assert "Job not found" in err.value.responses[-1].json()["message"]


def test_bad_credentials_refused(sim: Sim) -> None:
    bad = firecrest.ClientCredentialsAuth(CLIENT_ID, "wrong", sim.token_uri)
    with pytest.raises(ClientsCredentialsException):
        firecrest.v2.Firecrest(firecrest_url=sim.url, authorization=bad).systems()
    basic = firecrest.ClientCredentialsAuth(
        CLIENT_ID, SECRET, sim.token_uri, client_auth_method="client_secret_basic"
    )
    assert firecrest.v2.Firecrest(firecrest_url=sim.url, authorization=basic).systems()


def test_async_client(sim: Sim, tmp_path: Path) -> None:
    async def main() -> None:
        c = firecrest.v2.AsyncFirecrest(firecrest_url=sim.url, authorization=sim.auth())
        assert next(s["name"] for s in await c.systems()) == SYSTEM
        job_id = (
            await c.submit(SYSTEM, working_dir=f"/home/{USER}", script_str="#!/bin/bash\nsleep 2\n")
        )["jobId"]
        assert (await c.job_info(SYSTEM, job_id))[0]["jobId"] == job_id
        done = await c.wait_for_job(SYSTEM, job_id, timeout=20)
        assert done[0]["status"]["state"] == "COMPLETED"
        victim = (
            await c.submit(
                SYSTEM, working_dir=f"/home/{USER}", script_str="#!/bin/bash\nsleep 999\n"
            )
        )["jobId"]
        await c.cancel_job(SYSTEM, victim)
        src = tmp_path / "up.txt"
        src.write_bytes(b"async bytes")
        await c.upload(SYSTEM, str(src), f"/home/{USER}", "up.txt")
        assert "up.txt" in {f["name"] for f in await c.list_files(SYSTEM, f"/home/{USER}")}
        await c.download(SYSTEM, f"/home/{USER}/up.txt", str(tmp_path / "down.txt"))
        assert (tmp_path / "down.txt").read_bytes() == b"async bytes"
        with pytest.raises(FirecrestException):
            await c.job_info("nosuch")
        await c.close_session()

    anyio.run(main)
