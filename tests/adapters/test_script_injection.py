"""Issue 11's job-script attacks, each sent through a real adapter to its facility simulator
over HTTP: the adapter refuses it naming the field, and the simulator saw nothing (no job, no
directive, no command; no file ``x`` in its virtual file system).

Before validation each of these reached the facility: a newline in a path or queue name added
``#SBATCH --account=evil`` and a command ``touch x``; ``A=1; touch x; B`` as an environment
*name* ran ``touch x``; ``slurm.comment`` replaced the broker's tag; ``slurm.account`` and the
spec's ``account`` charged another project.  The specs are built in code, as a worker rebuilds
them: msgspec's constraints (the API's 422s, tests/api/test_job_fields.py) do not run here,
so this is the renderers' own guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from adapters.errors import SiteRejected
from adapters.firecrest import Auth as FcAuth
from adapters.firecrest import FirecrestAdapter
from adapters.http import HttpSettings
from adapters.iri import Auth as IriAuth
from adapters.iri import IriAdapter
from adapters.psij import JobAttributes, JobSpec, ResourceSpec
from adapters.sfapi import Auth, SfapiAdapter
from adapters.types import FINAL_STATES, SubmitRequest
from simulators.common.facility import SimSettings
from simulators.firecrest import create_app as firecrest_app
from simulators.iri import create_app as iri_app
from tests.support.servers import ThreadedServer
from tests.support.sfapi import CLIENT_ID, HOME, SfapiSim, running_sim

pytestmark = pytest.mark.anyio
FAST = HttpSettings(retries=2, backoff_base=0.01, backoff_cap=0.05, read_timeout=5.0)
INJECT = "\n#SBATCH --account=evil\ntouch x\n"
PROJECT = "m0001"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def spec(**kw: Any) -> JobSpec:
    attrs = {"duration": 600, **kw.pop("attributes", {})}
    base: dict[str, Any] = {"executable": "/bin/bash", "arguments": ["-c", "echo hi"], **kw}
    return JobSpec(resources=ResourceSpec(node_count=1), attributes=JobAttributes(**attrs), **base)


def custom(key: str, value: str) -> JobSpec:
    return spec(attributes={"custom_attributes": {key: value}})


# (id, spec, the field the refusal names)
ATTACKS: list[tuple[str, JobSpec, str]] = [
    ("directory", spec(directory=HOME + INJECT), "spec.directory"),
    ("stdout_path", spec(stdout_path="out.txt" + INJECT), "spec.stdout_path"),
    ("stderr_path", spec(stderr_path="err.txt" + INJECT), "spec.stderr_path"),
    ("queue_name", spec(attributes={"queue_name": "debug" + INJECT}), "spec.attributes.queue_name"),
    ("reservation_id", spec(attributes={"reservation_id": "r" + INJECT}), "spec.attributes.reservation_id"),
    ("custom-key", custom("slurm.constraint=cpu" + INJECT + "#SBATCH --x", "1"), "spec.attributes.custom_attributes"),
    ("custom-value", custom("slurm.constraint", "cpu" + INJECT), "spec.attributes.custom_attributes.slurm.constraint"),
    ("env-name", spec(environment={"A=1; touch x; B": "1"}), "spec.environment"),
    ("env-value-newline", spec(environment={"A": "1\ntouch x"}), "spec.environment.A"),
    ("argument-newline", spec(arguments=["-c", "echo\ntouch x"]), "spec.arguments[1]"),
    ("executable-newline", spec(executable="/bin/true\ntouch x"), "spec.executable"),
    ("nul-byte", spec(arguments=["a\x00b"]), "spec.arguments[0]"),
    ("slurm.comment", custom("slurm.comment", "superfed:someone-else"), "slurm.comment"),
    ("slurm.account", custom("slurm.account", "evil"), "slurm.account"),
    ("slurm.acc-prefix", custom("slurm.acc", "evil"), "slurm.acc"),
    ("slurm.output", custom("slurm.output", "/global/homes/o/other/x"), "slurm.output"),
    ("slurm.nodes", custom("slurm.nodes", "4096"), "slurm.nodes"),
    ("spec-account", spec(attributes={"account": "evil"}), "spec.attributes.account"),
]  # fmt: skip
IDS = [a[0] for a in ATTACKS]


# -- SF API (NERSC): the script goes to the simulator's sbatch -----------------------------------
@pytest.fixture(scope="module")
def sfapi_sim() -> Iterator[SfapiSim]:
    yield from running_sim()


@pytest.fixture
async def sfapi(sfapi_sim: SfapiSim, tmp_path: Path) -> AsyncIterator[SfapiAdapter]:
    sfapi_sim.control("reset")
    key = tmp_path / "sfapi.pem"
    key.write_text(sfapi_sim.private_pem)
    key.chmod(0o600)
    a = SfapiAdapter(
        name="nersc", url=sfapi_sim.url, systems=["perlmutter"],
        auth=Auth(client_id=CLIENT_ID, private_key_file=str(key)), http=FAST,
    )  # fmt: skip
    yield a
    await a.aclose()


def sim_jobs(url: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{url}/_sim/jobs", timeout=10).json()["jobs"])


@pytest.mark.parametrize(("job", "field"), [(s, f) for _, s, f in ATTACKS], ids=IDS)
async def test_sfapi_refuses_the_attack_and_the_simulator_sees_nothing(
    sfapi: SfapiAdapter, sfapi_sim: SfapiSim, job: JobSpec, field: str
) -> None:
    with pytest.raises(SiteRejected) as refused:
        await sfapi.submit(SubmitRequest(tag="attack-1", spec=job, system="perlmutter", project=PROJECT))
    assert field in str(refused.value)
    assert sim_jobs(sfapi_sim.url) == []
    assert "x" not in {e.name for e in await sfapi.list_dir(HOME, "perlmutter")}


async def test_sfapi_hostile_but_valid_values_stay_data(sfapi: SfapiAdapter, sfapi_sim: SfapiSim) -> None:
    """Shell and sbatch syntax in arguments and environment values is passed as data: the
    simulator's job has the broker's account and tag, and its one command printed them."""
    job = spec(
        arguments=["-c", 'echo "$V"; echo done', "#SBATCH --account=evil"],
        environment={"V": "a; touch x; $(touch y) `touch z`"},
        attributes={"custom_attributes": {"slurm.constraint": "cpu"}},
    )
    receipt = await sfapi.submit(
        SubmitRequest(tag="hostile-1", spec=job, system="perlmutter", project="als-7", account=PROJECT)
    )
    (seen,) = sim_jobs(sfapi_sim.url)
    assert (seen["account"], seen["comment"]) == (PROJECT, "superfed:hostile-1")
    for _ in range(500):
        st = (await sfapi.statuses([receipt.native_id], "perlmutter")).get(receipt.native_id)
        if st is not None and st.state in FINAL_STATES:
            break
        await asyncio.sleep(0.02)
    assert st is not None and st.state == "COMPLETED"
    names = {e.name for e in await sfapi.list_dir(HOME, "perlmutter")}
    assert not names & {"x", "y", "z"}
    out = await sfapi.read_file(f"{HOME}/slurm-{receipt.native_id}.out", "perlmutter", 10_000)
    assert out.decode().splitlines() == ["a; touch x; $(touch y) `touch z`", "done"]


# -- FirecREST (CSCS): the script and the JSON fields ------------------------------------------
@pytest.fixture(scope="module")
def firecrest_url() -> Iterator[str]:
    settings = SimSettings(
        systems=["daint"], nodes=8, time_scale=0.01, user="fcuser", client_id="fc-client", client_secret="fc-secret"
    )
    with ThreadedServer(firecrest_app(settings)) as srv:
        yield srv.url


@pytest.fixture
async def firecrest(firecrest_url: str, tmp_path: Path) -> AsyncIterator[FirecrestAdapter]:
    httpx.post(f"{firecrest_url}/_sim/reset", timeout=10).raise_for_status()
    secret = tmp_path / "secret"
    secret.write_text("fc-secret\n")
    auth = FcAuth(client_id="fc-client", token_url=f"{firecrest_url}/auth/token", client_secret_file=str(secret))
    a = FirecrestAdapter(name="cscs", url=firecrest_url, systems=["daint"], auth=auth, http=FAST)
    yield a
    await a.aclose()


@pytest.mark.parametrize(("job", "field"), [(s, f) for _, s, f in ATTACKS], ids=IDS)
async def test_firecrest_refuses_the_attack_and_the_simulator_sees_nothing(
    firecrest: FirecrestAdapter, firecrest_url: str, job: JobSpec, field: str
) -> None:
    with pytest.raises(SiteRejected) as refused:
        await firecrest.submit(SubmitRequest(tag="attack-1", spec=job, system="daint", project=PROJECT))
    assert field in str(refused.value)
    assert sim_jobs(firecrest_url) == []


# -- IRI (ALCF): a JSON JobSpec; PBS renders it at the facility ----------------------------------
@pytest.fixture(scope="module")
def iri_url() -> Iterator[str]:
    settings = SimSettings(systems=["polaris"], nodes=4, time_scale=0.01, static_tokens=["iri-token"])
    with ThreadedServer(iri_app(settings)) as srv:
        yield srv.url


@pytest.fixture
async def iri(iri_url: str, tmp_path: Path) -> AsyncIterator[IriAdapter]:
    httpx.post(f"{iri_url}/_sim/reset", timeout=10).raise_for_status()
    token = tmp_path / "iri.token"
    token.write_text("iri-token\n")
    a = IriAdapter(name="alcf", url=iri_url, systems=["polaris"], auth=IriAuth(token_file=str(token)), http=FAST)
    yield a
    await a.aclose()


IRI_ATTACKS = [a for a in ATTACKS if a[0] not in ("slurm.nodes",)] + [
    ("pbs.A", custom("pbs.A", "evil"), "pbs.A"),
    ("account-attribute", custom("account", "evil"), "custom_attributes.account"),
]


@pytest.mark.parametrize(("job", "field"), [(s, f) for _, s, f in IRI_ATTACKS], ids=[a[0] for a in IRI_ATTACKS])
async def test_iri_refuses_the_attack_and_the_simulator_sees_nothing(
    iri: IriAdapter, iri_url: str, job: JobSpec, field: str
) -> None:
    fs = {**job.attributes.custom_attributes, "filesystems": "home"}  # what ALCF requires
    job = msgspec.structs.replace(job, attributes=msgspec.structs.replace(job.attributes, custom_attributes=fs))
    with pytest.raises(SiteRejected) as refused:
        await iri.submit(SubmitRequest(tag="attack-1", spec=job, system="polaris", project=PROJECT))
    assert field in str(refused.value)
    assert sim_jobs(iri_url) == []


def test_a_directive_checks_its_option_and_its_value_by_the_options_own_pattern() -> None:
    """The last check before a line is written: an option sbatch does not know, or a value its
    option's pattern refuses (an integer option takes digits only, though the generic pattern
    would take letters), is ``UnsafeJob`` naming the field and saying why."""
    from adapters.slurm import directive
    from adapters.validation import UnsafeJob

    assert directive("nodes", "2", "spec.resources") == "--nodes=2"
    assert directive("exclusive", None, "spec.resources.exclusive_node_use") == "--exclusive"
    with pytest.raises(UnsafeJob) as no_such:
        directive("no-such-option", "1", "spec.attributes.custom_attributes.slurm.no-such-option")
    assert no_such.value.field == "spec.attributes.custom_attributes.slurm.no-such-option"
    assert str(no_such.value) == ("spec.attributes.custom_attributes.slurm.no-such-option: --no-such-option is not"
                                  " an sbatch option the broker writes")
    with pytest.raises(UnsafeJob) as letters:
        directive("nodes", "two", "spec.resources")
    assert letters.value.field == "spec.resources" and "'two'" in str(letters.value)


def test_a_flag_a_job_may_set_is_written_bare() -> None:
    """``slurm.<flag>`` (no value in sbatch) renders as ``--flag``: ``--requeue=true`` would be
    an sbatch error at the facility."""
    from adapters.psij import JobSpec
    from adapters.slurm import sbatch_directives

    spec = msgspec.convert({"executable": "/bin/true", "attributes": {"custom_attributes": {"slurm.requeue": "true"}}},
                           JobSpec)
    lines = sbatch_directives(spec, "j1abc", account="m0001")
    assert "--requeue" in lines and not any(line.startswith("--requeue=") for line in lines)
