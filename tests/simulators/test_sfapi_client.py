"""The official ``sfapi_client`` (sync ``Client`` and ``AsyncClient``, unmodified) against the
SF API simulator, through the real key-based token flow."""

from __future__ import annotations

import io
from collections.abc import Iterator

import anyio
import httpx
import pytest
from sfapi_client import AsyncClient, Client, SfApiError
from sfapi_client.compute import Machine
from sfapi_client.jobs import JobState

from tests.support.sfapi import CLIENT_ID, HOME, USER, SfapiSim, rsa_keypair, running_sim

FAST = 0.05  # seconds between job polls (sfapi_client's wait_interval)


@pytest.fixture(scope="module")
def sim() -> Iterator[SfapiSim]:
    yield from running_sim()


@pytest.fixture(autouse=True)
def _reset(sim: SfapiSim) -> None:
    sim.control("reset")


def client(sim: SfapiSim, secret: str | None = None) -> Client:
    return Client(
        client_id=CLIENT_ID,
        secret=secret or sim.private_pem,
        api_base_url=sim.api,
        token_url=sim.token_url,
        wait_interval=FAST,
    )  # type: ignore[arg-type]


def test_public_status_notes_outages_and_meta(sim: SfapiSim) -> None:
    with Client(api_base_url=sim.api) as c:
        everything = c.resources.status()
        assert everything["perlmutter"].status.value == "active"
        assert everything["perlmutter"].description == "System is active"
        assert everything["global_homes"].system_type == "filesystem"
        assert c.resources.status("perlmutter").name == "perlmutter"
        assert c.resources.outages("perlmutter") == []
        assert c.resources.notes() == {}
        planned = c.resources.planned_outages("perlmutter")
        assert planned[0].status.value == "Planned"
        assert "compute.targets" in c.api.config()
        assert c.api.changelog()[0].change


def test_submit_and_complete(sim: SfapiSim) -> None:
    script = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --time=00:10:00\n#SBATCH -J hello\n"
    script += "sleep 20\necho hi\n"
    with client(sim) as c:
        pm = c.compute(Machine.perlmutter)
        job = pm.submit_job(script)
        assert job.jobid
        assert job.complete() == JobState.COMPLETED
        done = pm.job(job.jobid)  # sacct
        assert done.state == JobState.COMPLETED
        assert done.jobname == "hello" and done.nnodes == "2" and done.exitcode == "0:0"
        assert done.user == USER and done.timelimit == "00:10:00"


def test_failing_job_shows_failed_with_exit_code(sim: SfapiSim) -> None:
    with client(sim) as c:
        pm = c.compute("perlmutter")
        job = pm.submit_job("#!/bin/bash\n#SBATCH -N 1\n#SBATCH -t 5\necho oops\nexit 3\n")
        assert job.complete() == JobState.FAILED
        assert pm.job(job.jobid).exitcode == "3:0"


def test_cancel_a_running_job(sim: SfapiSim) -> None:
    with client(sim) as c:
        pm = c.compute(Machine.perlmutter)
        job = pm.submit_job("#!/bin/bash\n#SBATCH --time=01:00:00\nsleep 100000\n")
        assert job.running() == JobState.RUNNING
        listed = pm.jobs(user=USER)  # squeue
        assert [j.jobid for j in listed] == [job.jobid]
        job.cancel(wait=True)
        assert job.state == JobState.CANCELLED
        row = httpx.get(
            f"{sim.api}/compute/jobs/perlmutter/{job.jobid}",
            params={"sacct": "true", "cached": "false"},
            headers={"Authorization": f"Bearer {c.token}"},
        ).json()
        assert row["output"][0]["state"] == f"CANCELLED by {sim.settings.uid}"


def test_sbatch_rejection_is_the_clients_error(sim: SfapiSim) -> None:
    with client(sim) as c:
        pm = c.compute(Machine.perlmutter)
        with pytest.raises(SfApiError, match=r"sbatch: error: .*time limit"):
            pm.submit_job("#!/bin/bash\n#SBATCH --time=3-00:00:00\necho too long\n")
        with pytest.raises(SfApiError, match="Invalid account"):
            pm.submit_job("#!/bin/bash\n#SBATCH --account=nosuch\necho x\n")


def test_submit_by_path_with_args(sim: SfapiSim) -> None:
    with client(sim) as c:
        pm = c.compute(Machine.perlmutter)
        job = pm.submit_job(f"{HOME}/hello.sh", args=["a", "b"])
        assert job.complete() == JobState.COMPLETED
        assert pm.job(job.jobid).jobname == "hello.sh"


def test_files_ls_upload_download(sim: SfapiSim) -> None:
    with client(sim) as c:
        pm = c.compute(Machine.perlmutter)
        names = sorted(p.name for p in pm.ls(HOME))
        assert names == [".bashrc", "hello.sh"]
        [home] = pm.ls(HOME, directory=True)
        assert home.is_dir()
        target = home / "data.txt"
        buf = io.BytesIO(b"superfed\n")
        uploaded = target.upload(buf)
        [listed] = pm.ls(str(uploaded))
        assert listed.is_file() and listed.size == 9
        assert listed.download().read() == "superfed\n"
        assert listed.download(binary=True).read() == b"superfed\n"
        with pytest.raises(SfApiError, match="No such file or directory"):
            pm.ls(f"{HOME}/missing")


def test_run_commands(sim: SfapiSim) -> None:
    with client(sim) as c:
        pm = c.compute(Machine.perlmutter)
        assert pm.run("echo hello") == "hello\n"
        assert pm.run(["bash", "-c", "'cd $HOME && pwd && whoami'"]) == f"{HOME}\n{USER}\n"
        assert pm.run("bash -c 'echo made > made.txt; cat made.txt'") == "made\n"
        with pytest.raises(SfApiError, match="command not found"):
            pm.run("frobnicate --now")
        task = pm.run_task("sleep 100")
        task.cancel()
        task.update()
        assert task.status.value == "CANCELLED"


def test_account_user_projects_roles_clients_groups(sim: SfapiSim) -> None:
    with client(sim) as c:
        user = c.user()
        assert user.name == USER and user.uid == sim.settings.uid
        projects = user.projects()
        assert {p.repo_name for p in projects} == set(sim.settings.projects)
        assert projects[0].hours_given == 10_000.0
        assert {r.repo_name for r in user.roles()} == set(sim.settings.projects)
        assert user.clients()[0].clientId == CLIENT_ID
        assert {g.name for g in user.groups()} == set(sim.settings.projects)


def test_async_client_full_flow(sim: SfapiSim) -> None:
    async def main() -> None:
        async with AsyncClient(
            client_id=CLIENT_ID,
            secret=sim.private_pem,
            api_base_url=sim.api,
            token_url=sim.token_url,
            wait_interval=FAST,
        ) as c:  # type: ignore[arg-type]
            assert (await c.resources.status("perlmutter")).status.value == "active"
            pm = await c.compute(Machine.perlmutter)
            ok = await pm.submit_job("#!/bin/bash\n#SBATCH -N 1\nsleep 10\n")
            bad = await pm.submit_job("#!/bin/bash\n#SBATCH -N 1\nexit 3\n")
            states = await asyncio_gather(ok.complete(), bad.complete())
            assert states == [JobState.COMPLETED, JobState.FAILED]
            assert len(await pm.jobs(jobids=[ok.jobid, bad.jobid], command="sacct")) == 2
            assert (await pm.run("hostname")).strip()
            names = {p.name for p in await pm.ls(HOME)}  # and the two jobs' slurm-<id>.out
            assert names == {
                ".bashrc",
                "hello.sh",
                f"slurm-{ok.jobid}.out",
                f"slurm-{bad.jobid}.out",
            }
            user = await c.user()
            assert user.name == USER

    anyio.run(main)


async def asyncio_gather(*aws: object) -> list[object]:
    import asyncio

    return list(await asyncio.gather(*aws))  # type: ignore[arg-type]


def test_outage_shows_unavailable_and_blocks_submission(sim: SfapiSim) -> None:
    sim.control("outage", {"component": "compute", "state": "down", "note": "cooling failure"})
    with Client(api_base_url=sim.api) as pub:
        status = pub.resources.status("perlmutter")
        assert status.status.value == "unavailable"
        assert any("cooling failure" in n for n in status.notes or [])
        [outage] = pub.resources.outages("perlmutter")
        assert outage.status.value == "Active"
    with client(sim) as c:
        pm = c.compute(Machine.perlmutter)
        # sfapi_client checks the status only for the client object, so sbatch itself fails
        with pytest.raises(SfApiError, match="Unable to contact slurm controller"):
            pm.submit_job("#!/bin/bash\necho x\n")
    sim.control("outage", {"component": "compute", "state": "up"})
    with Client(api_base_url=sim.api) as pub:
        assert pub.resources.status("perlmutter").status.value == "active"
        [outage] = pub.resources.outages("perlmutter")
        assert outage.status.value == "Completed"


def test_degraded_filesystem(sim: SfapiSim) -> None:
    sim.control("outage", {"component": "filesystem", "state": "degraded"})
    with Client(api_base_url=sim.api) as pub:
        everything = pub.resources.status()
        assert everything["global_homes"].status.value == "degraded"
        assert everything["global_homes"].description == "System Degraded"
        assert everything["perlmutter"].status.value == "active"


def test_bad_key_is_refused(sim: SfapiSim) -> None:
    other_private, _ = rsa_keypair()
    with client(sim, secret=other_private) as c, pytest.raises(Exception, match="invalid_client"):
        c.compute(Machine.perlmutter)


def test_revoked_credentials_are_refused(sim: SfapiSim) -> None:
    sim.control("credentials", {"valid": False})
    with client(sim) as c, pytest.raises(Exception, match="invalid_client"):
        c.user()


def test_dtns_in_status_and_usable_for_files(sim: SfapiSim) -> None:
    with Client(api_base_url=sim.api) as pub:
        dtns = pub.resources.status("dtns")
        assert dtns.name == "dtns" and dtns.status.value == "active"
        assert "dtns" in pub.resources.status()
    with client(sim) as c:
        dtn = c.compute(Machine.dtns)
        assert dtn.run("hostname") == "dtn03\n"
        assert {p.name for p in dtn.ls(HOME)} >= {".bashrc", "hello.sh"}


def test_debug_qos_and_its_limits(sim: SfapiSim) -> None:
    with client(sim) as c:
        pm = c.compute(Machine.perlmutter)
        job = pm.submit_job("#!/bin/bash\n#SBATCH -q debug\n#SBATCH -N 2\n#SBATCH -t 10\necho quick\n")
        assert job.complete() == JobState.COMPLETED
        assert pm.job(job.jobid).qos == "debug"
        with pytest.raises(SfApiError, match="time limit"):
            pm.submit_job("#!/bin/bash\n#SBATCH -q debug\n#SBATCH -t 01:00:00\necho long\n")
        with pytest.raises(SfApiError, match="Invalid qos"):
            pm.submit_job("#!/bin/bash\n#SBATCH -q nosuch\necho x\n")


def test_job_runs_its_script_with_slurm_environment(sim: SfapiSim) -> None:
    script = (
        "#!/bin/bash\n#SBATCH -N 2\n#SBATCH --ntasks-per-node=2\n#SBATCH -e err-%j.txt\n"
        "echo $SLURM_JOB_ID $SLURM_NNODES $SLURM_NTASKS $SLURM_SUBMIT_DIR\n"
        "srun -n 2 echo hi\n"
        "mkdir -p run/in && echo data > run/in/a.txt && cp run/in/a.txt run/b.txt && mv run/b.txt run/c.txt\n"
        "tar czf run.tgz run && ls run\n"
        "cat missing.txt\n"
        "echo \"cat said $?\"\n"
        "python3 -c 'print(1)'\n"
    )
    with client(sim) as c:
        pm = c.compute(Machine.perlmutter)
        job = pm.submit_job(script)
        assert job.complete() == JobState.FAILED  # python3 is not there: 127, as bash says
        assert pm.job(job.jobid).exitcode == "127:0"
        [out] = pm.ls(f"{HOME}/slurm-{job.jobid}.out")
        assert out.download().read() == f"{job.jobid} 2 4 {HOME}\nhi\nhi\nc.txt\nin\ncat said 1\n"
        [err] = pm.ls(f"{HOME}/err-{job.jobid}.txt")
        assert err.download().read() == (
            "cat: missing.txt: No such file or directory\n"
            f"/var/spool/slurmd/job{job.jobid}/slurm_script: line 11: python3: command not found\n"
        )
        assert pm.run("tar tzf run.tgz") == "run/\nrun/c.txt\nrun/in/\nrun/in/a.txt\n"


def test_wait_with_timeout_list_and_filter(sim: SfapiSim) -> None:
    with client(sim) as c:
        pm = c.compute(Machine.perlmutter)
        slow = pm.submit_job("#!/bin/bash\n#SBATCH -J slow\n#SBATCH -t 60\nsleep 100000\n")
        quick = pm.submit_job("#!/bin/bash\n#SBATCH -J quick\n#SBATCH -q debug\nsleep 1\n")
        with pytest.raises(TimeoutError):
            slow.complete(timeout=1)
        assert quick.complete(timeout=60) == JobState.COMPLETED
        live = pm.jobs(user=USER)  # squeue: only what the controller still holds
        assert [j.jobid for j in live] == [slow.jobid]
        assert [j.jobid for j in pm.jobs(user=USER, partition="regular")] == [slow.jobid]
        both = pm.jobs(jobids=[slow.jobid, quick.jobid], command="sacct")
        assert {j.jobname for j in both} == {"slow", "quick"}
        slow.cancel(wait=True)


def test_run_has_squeue_sacct_ln_and_file_commands(sim: SfapiSim) -> None:
    with client(sim) as c:
        pm = c.compute(Machine.perlmutter)
        job = pm.submit_job("#!/bin/bash\n#SBATCH -J waiting\nsleep 100000\n")
        job.running()
        queue = pm.run("squeue --me -h")
        assert queue.split()[:5] == [job.jobid, "regular", "waiting", USER, "R"]
        job.cancel(wait=True)
        assert pm.run("squeue --me -h") == ""
        rows = pm.run(f"sacct -P -n -j {job.jobid}").strip().split("|")
        assert rows[0] == job.jobid and rows[5] == f"CANCELLED by {sim.settings.uid}"
        assert pm.run("sacct -n -j 1").strip() == ""
        assert pm.run("mkdir -p t/u && echo x > t/u/f && ln -s t/u/f l && cat l && ls -l l").startswith("x\nlrwx")
        assert pm.run("cp -r t t2 && mv t2 t3 && ls t3/u") == "f\n"


def test_five_mib_upload_download_and_directory_trees(sim: SfapiSim) -> None:
    data = bytes(range(256)) * (5 * 4096)  # 5 MiB, NERSC's limit for utilities/upload
    with client(sim) as c:
        pm = c.compute(Machine.perlmutter)
        [home] = pm.ls(HOME, directory=True)
        uploaded = (home / "big.bin").upload(io.BytesIO(data))
        [big] = pm.ls(str(uploaded))
        assert big.size == len(data)
        assert big.download(binary=True).read() == data
        with pytest.raises(SfApiError, match="File too large"):
            (home / "bigger.bin").upload(io.BytesIO(data + b"x"))
        pm.run("mkdir -p tree/a/b && echo leaf > tree/a/b/leaf.txt && touch tree/top.txt")
        [tree] = pm.ls(f"{HOME}/tree", directory=True)
        assert sorted(p.name for p in tree.ls()) == ["a", "top.txt"]
        [a] = [p for p in tree.ls() if p.name == "a"]
        [b] = a.ls()
        [leaf] = b.ls()
        assert leaf.download().read() == "leaf\n"
