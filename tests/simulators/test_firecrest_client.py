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
    settings = SimSettings(enforce_policy=False,
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


def test_job_output_is_what_the_script_printed(sim: Sim) -> None:
    c = sim.client()
    home = f"/home/{USER}"
    script = (
        "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=2\n#SBATCH --error=job.err\n"
        "echo job $SLURM_JOB_ID on $SLURM_NNODES nodes, $SLURM_NTASKS tasks, in $SLURM_SUBMIT_DIR\n"
        "srun bash -c 'echo task $SLURM_PROCID'\n"
        "mkdir -p results && echo 42 > results/answer.txt && cp results/answer.txt copy.txt\n"
        "frobnicate --now\n"
        "echo \"status $?\"\n"
    )
    job_id = c.submit(SYSTEM, working_dir=home, script_str=script)["jobId"]
    done = c.wait_for_job(SYSTEM, job_id, timeout=30)[0]
    assert done["status"]["state"] == "COMPLETED"  # the last command's code: echo's 0
    meta = c.job_metadata(SYSTEM, job_id)[0]
    assert meta["standardError"] == f"{home}/job.err"
    out = c.view(SYSTEM, meta["standardOutput"])
    assert out == (
        f"job {job_id} on 2 nodes, 4 tasks, in {home}\n"
        "task 0\ntask 1\ntask 2\ntask 3\nstatus 127\n"
    )
    assert c.view(SYSTEM, f"{home}/job.err") == (
        f"/var/spool/slurmd/job{job_id}/slurm_script: line 8: frobnicate: command not found\n"
    )
    assert c.view(SYSTEM, f"{home}/copy.txt") == "42\n"  # what the job wrote, downloaded


def test_unknown_command_fails_the_job(sim: Sim) -> None:
    c = sim.client()
    job_id = c.submit(SYSTEM, working_dir=f"/home/{USER}", script_str="#!/bin/bash\npython3 -c 'print(1)'\n")["jobId"]
    done = c.wait_for_job(SYSTEM, job_id, timeout=30)[0]
    assert done["status"]["state"] == "FAILED" and done["status"]["exitCode"] == 127


def test_wait_with_a_timeout_cancels_the_job(sim: Sim) -> None:
    from firecrest.FirecrestException import JobTimeoutException

    c = sim.client()
    job_id = c.submit(SYSTEM, working_dir=f"/home/{USER}", script_str="#!/bin/bash\nsleep 100000\n")["jobId"]
    with pytest.raises(JobTimeoutException):
        c.wait_for_job(SYSTEM, job_id, timeout=1)
    assert c.job_info(SYSTEM, job_id)[0]["status"]["state"].startswith("CANCELLED")


def test_list_and_filter_jobs(sim: Sim) -> None:
    c = sim.client()
    a = c.submit(SYSTEM, working_dir=f"/home/{USER}", script_str="#!/bin/bash\n#SBATCH -J alpha\nsleep 1\n")["jobId"]
    b = c.submit(SYSTEM, working_dir=f"/home/{USER}", script_str="#!/bin/bash\nsleep 1\n", account="m0002")["jobId"]
    assert {j["jobId"] for j in c.job_info(SYSTEM)} == {a, b}
    assert [j["jobId"] for j in c.job_info(SYSTEM, account="m0002")] == [b]
    assert {j["name"] for j in c.job_info(SYSTEM)} == {"alpha", "sbatch"}


def test_unknown_reservation_is_refused_with_slurms_words(sim: Sim) -> None:
    c = sim.client()
    with pytest.raises(FirecrestException) as err:
        c.submit(SYSTEM, working_dir=f"/home/{USER}", script_str="#!/bin/bash\ntrue\n", reservation="nosuch")
    assert "Requested reservation is invalid" in err.value.responses[-1].json()["message"]
    with pytest.raises(FirecrestException):
        c.submit(SYSTEM, working_dir=f"/home/{USER}", script_str="#!/bin/bash\n#SBATCH --reservation=r1\ntrue\n")
    assert c.job_info(SYSTEM) == []  # nothing was queued


def test_attach_runs_a_command_inside_the_running_job(sim: Sim) -> None:
    c = sim.client()
    home = f"/home/{USER}"
    job_id = c.submit(SYSTEM, working_dir=home, script_str="#!/bin/bash\nsleep 100000\n")["jobId"]
    c.attach_to_job(SYSTEM, job_id, "echo attached to $SLURM_JOB_ID > attach.out")
    assert c.view(SYSTEM, f"{home}/attach.out") == f"attached to {job_id}\n"
    c.cancel_job(SYSTEM, job_id)
    with pytest.raises(FirecrestException) as err:
        c.attach_to_job(SYSTEM, job_id, "true")
    assert "already completing or completed" in err.value.responses[-1].json()["message"]


def test_five_mib_upload_and_download_through_staging(sim: Sim, tmp_path: Path) -> None:
    c = sim.client()
    home = f"/home/{USER}"
    data = bytes(range(256)) * (5 * 4096)  # 5 MiB: staged, in 2 MiB parts
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    upload = c.upload(SYSTEM, str(src), home, "big.bin")
    assert upload is not None and len(upload.transfer_data["transferDirectives"]["partsUploadUrls"]) == 3
    assert c.stat(SYSTEM, f"{home}/big.bin")["size"] == len(data)
    import hashlib

    assert c.checksum(SYSTEM, f"{home}/big.bin")["checksum"] == hashlib.sha256(data).hexdigest()
    down = c.download(SYSTEM, f"{home}/big.bin", tmp_path / "back.bin")
    assert down is not None and (tmp_path / "back.bin").read_bytes() == data
    log = c.view(SYSTEM, upload.transfer_data["transferJob"]["logs"]["outputLog"])
    assert "File was successfully downloaded" in log  # the transfer job's own log
    with pytest.raises(FileNotFoundError):
        c.download(SYSTEM, f"{home}/missing.bin", tmp_path / "x")


def test_directory_trees_copy_move_link_compress_extract(sim: Sim) -> None:
    c = sim.client()
    home = f"/home/{USER}"
    c.mkdir(SYSTEM, f"{home}/tree/sub", create_parents=True)
    c.upload(SYSTEM, io.BytesIO(b"leaf\n"), f"{home}/tree/sub", "leaf.txt", file_size=5)
    c.cp(SYSTEM, f"{home}/tree", f"{home}/copy")
    c.mv(SYSTEM, f"{home}/copy", f"{home}/moved")
    link = c.symlink(SYSTEM, f"{home}/moved/sub/leaf.txt", f"{home}/leaf-link")
    assert link["output"]["type"] == "l"
    assert c.view(SYSTEM, f"{home}/leaf-link") == "leaf\n"
    listed = {f["name"]: f for f in c.list_files(SYSTEM, home)}
    assert listed["leaf-link"]["type"] == "l" and listed["leaf-link"]["linkTarget"] == f"{home}/moved/sub/leaf.txt"
    followed = {f["name"]: f for f in c.list_files(SYSTEM, home, dereference=True)}
    assert followed["leaf-link"]["type"] == "-" and followed["leaf-link"]["size"] == "5"
    assert c.stat(SYSTEM, f"{home}/leaf-link")["size"] != c.stat(SYSTEM, f"{home}/leaf-link", dereference=True)["size"]
    names = [f["name"] for f in c.list_files(SYSTEM, f"{home}/moved", recursive=True)]
    assert names == ["sub", "sub/leaf.txt"]
    c.compress(SYSTEM, f"{home}/tree", f"{home}/tree.tar.gz")
    c.mkdir(SYSTEM, f"{home}/unpacked")
    c.extract(SYSTEM, f"{home}/tree.tar.gz", f"{home}/unpacked")
    assert c.view(SYSTEM, f"{home}/unpacked/tree/sub/leaf.txt") == "leaf\n"
    assert c.chown(SYSTEM, f"{home}/unpacked", USER, "m0001")["group"] == "m0001"
    with pytest.raises(FirecrestException) as err:
        c.chown(SYSTEM, f"{home}/unpacked", "root", "")
    assert err.value.responses[-1].status_code == 403
    from firecrest.FirecrestException import TransferJobFailedException

    with pytest.raises(TransferJobFailedException):
        c.cp(SYSTEM, f"{home}/nope", f"{home}/nope2")  # the job runs and its log says it failed


def test_async_client_staged_transfers(sim: Sim, tmp_path: Path) -> None:
    data = b"0123456789abcdef" * (3 << 16)  # 3 MiB: past the 1 MiB direct limit, two parts

    async def main() -> None:
        c = firecrest.v2.AsyncFirecrest(firecrest_url=sim.url, authorization=sim.auth())
        (tmp_path / "a.bin").write_bytes(data)
        await c.upload(SYSTEM, str(tmp_path / "a.bin"), f"/home/{USER}", "a.bin")
        assert (await c.stat(SYSTEM, f"/home/{USER}/a.bin"))["size"] == len(data)
        await c.download(SYSTEM, f"/home/{USER}/a.bin", str(tmp_path / "b.bin"))
        assert (tmp_path / "b.bin").read_bytes() == data
        await c.close_session()

    anyio.run(main)
