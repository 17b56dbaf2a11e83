"""The simulators enforce each facility's published submission rules (``enforce_policy``, on
by default and in ``superfed demo``): Perlmutter's -C constraint and QOS limits, Polaris's
queue limits and ``filesystems``, CSCS's account."""

from __future__ import annotations

import pytest

from simulators.common.facility import SimSettings
from simulators.firecrest.compute import NO_ACCOUNT, JobDescription, _submit
from simulators.firecrest.errors import FirecrestError
from simulators.firecrest.state import FirecrestFacility
from simulators.iri import alcf_partitions, pbs
from simulators.iri.state import IriFacility
from simulators.sfapi.compute import submit_script
from simulators.sfapi.policy import NO_POLICY
from simulators.sfapi.state import SfapiFacility


def sbatch(*lines: str, nodes: int = 64) -> dict[str, object]:
    f = SfapiFacility(SimSettings(systems=["perlmutter"], nodes=nodes, time_scale=0.0))
    script = "#!/bin/bash\n" + "".join(f"#SBATCH {x}\n" for x in lines) + "sleep 1\n"
    return submit_script(f, f.systems["perlmutter"], script, False, [])


def test_perlmutter_refuses_a_job_without_an_architecture_in_sbatchs_words() -> None:
    assert sbatch("--nodes=1") == {"status": "error", "jobid": None, "error": NO_POLICY}
    assert sbatch("-C knl")["error"] == NO_POLICY
    assert sbatch("-C gpu")["status"] == "ok"
    assert sbatch("--constraint=gpu&hbm80g")["status"] == "ok"


def test_perlmutter_qos_limits_and_debug_as_the_default() -> None:
    f = SfapiFacility(SimSettings(systems=["perlmutter"], nodes=64, time_scale=0.0))
    sysm = f.systems["perlmutter"]
    ok = submit_script(f, sysm, "#!/bin/bash\n#SBATCH -C cpu\nsleep 1\n", False, [])
    assert ok["status"] == "ok" and sysm.jobs[str(ok["jobid"])].partition == "debug"
    assert sysm.jobs[str(ok["jobid"])].walltime_s == 1800  # debug's limit is its default
    assert "Requested time limit is invalid" in str(sbatch("-C cpu", "--time=01:00:00")["error"])
    assert "Requested node configuration" in str(sbatch("-C cpu", "--nodes=9")["error"])
    assert sbatch("-C cpu", "--qos=regular", "--nodes=30", "--time=6:00:00")["status"] == "ok"
    assert "Invalid qos specification" in str(sbatch("-C cpu", "--qos=prod")["error"])


def _iri_job(nodes: int, seconds: int, **attrs: object) -> pbs.WireJobSpec:
    return pbs.WireJobSpec(
        executable="/bin/true",
        resources=pbs.WireResources(node_count=nodes),
        attributes=pbs.WireAttributes(duration=seconds, **attrs),  # type: ignore[arg-type]
    )


@pytest.fixture
def polaris() -> IriFacility:
    return IriFacility(SimSettings(systems=["polaris"], nodes=64, partitions=alcf_partitions(64)))


def test_polaris_queue_limits(polaris: IriFacility) -> None:
    sysm = polaris.systems["polaris"]
    projects = polaris.settings.projects
    fs = {"custom_attributes": {"filesystems": "home:eagle"}, "account": "m0001"}

    def check(nodes: int, seconds: int, queue: str | None = None) -> str:
        try:
            return pbs.check(_iri_job(nodes, seconds, queue_name=queue, **fs), sysm, projects)[0]
        except pbs.QsubError as exc:
            return str(exc)

    assert check(1, 600) == pbs.REJECTED  # prod, the default, starts at 10 nodes
    assert check(1, 600, "debug") == "debug"
    assert check(1, 60, "debug") == pbs.REJECTED  # under 5 minutes
    assert check(3, 600, "debug") == pbs.REJECTED  # debug: 1-2 nodes
    assert check(30, 6 * 3600) == "prod"  # the medium band: 25-99 nodes, 6 h
    assert check(30, 7 * 3600) == pbs.REJECTED
    assert check(2, 60 * 3600, "preemptable") == "preemptable"
    try:
        pbs.check(_iri_job(1, 600, queue_name="debug", account="m0001"), sysm, projects)
    except pbs.QsubError as exc:
        assert str(exc) == pbs.NEED_FILESYSTEMS
    else:
        raise AssertionError("a job without filesystems was accepted")
    # the rules off (protocol tests on small machines): prod takes a small job
    assert pbs.check(_iri_job(1, 60, **fs), sysm, projects, strict=False)[0] == "prod"


def test_cscs_refuses_a_job_without_an_account() -> None:
    fac = FirecrestFacility(SimSettings(systems=["daint"], nodes=8, time_scale=0.0))
    sysm = fac.systems["daint"]
    script = "#!/bin/bash\n#SBATCH --nodes=1\nsleep 1\n"
    with pytest.raises(FirecrestError) as e:
        _submit(fac, "superfed", sysm, JobDescription(working_directory=".", script=script))
    assert NO_ACCOUNT in e.value.message
    job = _submit(fac, "superfed", sysm, JobDescription(working_directory=".", script=script, account="m0002"))
    assert job.account == "m0002"
    with pytest.raises(FirecrestError):  # an account the facility does not know
        _submit(fac, "superfed", sysm, JobDescription(working_directory=".", script=script, account="beamline"))
