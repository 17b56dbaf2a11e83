"""The FirecREST adapter's pure translations, table by table."""

from __future__ import annotations

import functools
from typing import Any

import httpx
import jsonschema
import msgspec
import pytest
import yaml
from hypothesis import given, settings

from adapters import firecrest as fc
from adapters.firecrest.translate import firecrest_message
from adapters.psij import JobAttributes, JobSpec, ResourceSpec
from adapters.slurm import STATE_MAP
from adapters.types import FileEntry, SubmitRequest
from tests.support.specs import spec_path
from tests.support.strategies import job_specs


@functools.cache
def spec() -> dict[str, Any]:
    return yaml.safe_load(spec_path("firecrest-v2/openapi-latest.yaml").read_text())  # type: ignore[no-any-return]


def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec()["components"]}
    return jsonschema.Draft202012Validator(schema)


def submit_validator() -> jsonschema.Draft202012Validator:
    return schema_validator("PostJobSubmitRequest")


# -- health ----------------------------------------------------------------------------------
def test_health_table_covers_exactly_the_words() -> None:
    assert set(fc.HEALTH_MAP) == {"healthy", "slow", "unhealthy", "unchecked"}


@pytest.mark.parametrize(
    ("healthy", "latency", "checked", "word", "state"),
    [
        (True, 0.1, "2026-01-01T00:00:00Z", "healthy", "up"),
        (True, None, "2026-01-01T00:00:00Z", "healthy", "up"),
        (True, fc.SLOW_CHECK_S, "2026-01-01T00:00:00Z", "slow", "degraded"),
        (False, 0.1, "2026-01-01T00:00:00Z", "unhealthy", "down"),
        (None, None, None, "unchecked", "unknown"),
        (False, None, None, "unchecked", "unknown"),  # `healthy` defaults to false before a check
    ],
)
def test_health_word_entry_by_entry(
    healthy: bool | None, latency: float | None, checked: str | None, word: str, state: str
) -> None:
    assert fc.health_word(healthy, latency, checked) == word
    assert fc.HEALTH_MAP[word] == state


def test_service_components_cover_the_specs_service_types() -> None:
    assert set(fc.SERVICE_COMPONENT) == set(
        spec()["components"]["schemas"]["BackendServiceType"]["enum"]
    )
    assert fc.SERVICE_COMPONENT["scheduler"] == "compute"


def _systems(*health: dict[str, Any], name: str = "daint") -> fc.WireSystems:
    return msgspec.convert(
        {"systems": [{"name": name, "servicesHealth": list(health)}]}, fc.WireSystems
    )


def test_parse_health_takes_the_worst_per_component() -> None:
    now = "2026-01-01T00:00:00Z"
    h = fc.parse_health(
        _systems(
            {"serviceType": "scheduler", "healthy": True, "latency": 0.1, "lastChecked": now},
            {"serviceType": "filesystem", "path": "/home", "healthy": True, "lastChecked": now},
            {
                "serviceType": "filesystem",
                "path": "/scratch",
                "healthy": False,
                "lastChecked": now,
                "message": "lustre hung",
            },
            {"serviceType": "ssh", "healthy": True, "latency": 9.0, "lastChecked": now},
        ),
        ["daint"],
    )
    states = {c.name: (c.state, c.detail) for c in h.components}
    assert states["compute"][0] == "up" and h.state == "up"
    assert states["filesystem"] == ("down", "daint /scratch: lustre hung")
    assert states["login"][0] == "degraded"


def test_parse_health_missing_system_or_health_is_unknown() -> None:
    assert fc.parse_health(_systems(name="eiger"), ["daint"]).state == "unknown"
    empty = msgspec.convert(
        {"systems": [{"name": "daint", "servicesHealth": None}]}, fc.WireSystems
    )
    assert fc.parse_health(empty, ["daint"]).state == "unknown"


# -- job states ------------------------------------------------------------------------------
def test_pbs_table_covers_qstat_letters() -> None:
    assert set(fc.PBS_STATES) == set("BEFHMQRSTUWX")


@pytest.mark.parametrize("word", sorted(STATE_MAP))
def test_every_slurm_word(word: str) -> None:
    assert fc.psij_state(word) == STATE_MAP[word]


@pytest.mark.parametrize("letter", sorted(fc.PBS_STATES))
def test_every_pbs_letter(letter: str) -> None:
    assert fc.psij_state(letter) == fc.PBS_STATES[letter]


def test_state_details() -> None:
    assert fc.psij_state("CANCELLED by 52000") == "CANCELED"
    assert fc.psij_state("F", exit_code=2) == "FAILED"
    assert fc.psij_state("F", exit_code=0) == "COMPLETED"
    assert fc.psij_state("WHATEVER") is None


def _job(**kw: Any) -> fc.WireJob:
    base = {
        "jobId": "7",
        "name": "x.sf-T1",
        "status": {"state": "RUNNING", "stateReason": "None", "exitCode": 0},
    }
    base.update(kw)
    return msgspec.convert(base, fc.WireJob)


def test_job_status() -> None:
    s = fc.job_status(_job())
    assert s is not None and (s.state, s.exit_code, s.message, s.tag) == (
        "ACTIVE",
        None,
        None,
        "T1",
    )
    done = fc.job_status(
        _job(status={"state": "FAILED", "exitCode": 3, "stateReason": "NonZeroExitCode"})
    )
    assert done is not None and (done.state, done.exit_code, done.message) == (
        "FAILED",
        3,
        "NonZeroExitCode",
    )
    listed = fc.job_status(_job(status={"state": ["PENDING", "REQUEUED"]}))
    assert (
        listed is not None
        and listed.state == "QUEUED"
        and listed.native_state == "PENDING,REQUEUED"
    )
    assert fc.job_status(_job(status={"state": "MARTIAN"})) is None
    assert fc.tag_of(_job(name="plain", comment="superfed:T9")) == "T9"


# -- submission ------------------------------------------------------------------------------
def _req(spec: JobSpec, project: str = "m0001", tag: str = "J1") -> SubmitRequest:
    return SubmitRequest(tag=tag, spec=spec, system="daint", project=project)


def test_build_submit_body_minimal() -> None:
    body = fc.build_submit_body(_req(JobSpec(executable="/bin/hostname")))
    job = body["job"]
    assert (
        job["name"] == "superfed.sf-J1"
        and job["workingDirectory"] == "."
        and job["account"] == "m0001"
    )
    # the broker's own directives close the block: sbatch keeps the last of a repeated option
    assert job["script"] == (
        "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --exclusive\n#SBATCH --job-name=J1\n"
        "#SBATCH --comment=superfed:J1\n#SBATCH --account=m0001\n/bin/hostname\n"
    )
    assert job["script"].rstrip().endswith("/bin/hostname")
    assert "partition" not in job and "env" not in job
    submit_validator().validate(body)


def test_build_submit_body_full() -> None:
    spec = JobSpec(
        executable="python3",
        arguments=["run.py", "--n", "it's"],
        name="my run!",
        directory="/scratch/u/run",
        environment={"OMP_NUM_THREADS": "8"},
        stdout_path="out.txt",
        stderr_path="err.txt",
        resources=ResourceSpec(node_count=4, processes_per_node=2),
        attributes=JobAttributes(duration=5400, queue_name="debug", reservation_id="res1"),
    )
    job = fc.build_submit_body(_req(spec))["job"]
    assert job["name"] == "my_run_.sf-J1"
    assert (job["workingDirectory"], job["partition"], job["reservation"]) == (
        "/scratch/u/run",
        "debug",
        "res1",
    )
    assert (job["standardOutput"], job["standardError"]) == ("out.txt", "err.txt")
    for line in (
        "#SBATCH --nodes=4",
        "#SBATCH --time=01:30:00",
        "#SBATCH --partition=debug",
        "#SBATCH --account=m0001",
        "export OMP_NUM_THREADS=8",
        "python3 run.py --n 'it'\"'\"'s'",
    ):
        assert line in job["script"]


def test_qos_is_not_a_partition() -> None:
    spec = JobSpec(
        executable="x",
        attributes=JobAttributes(queue_name="high", custom_attributes={"queue_is_qos": "1"}),
    )
    job = fc.build_submit_body(_req(spec, project=""))["job"]
    assert "partition" not in job and "account" not in job and "--qos=high" in job["script"]


@settings(max_examples=150, deadline=None)
@given(job_specs())
def test_every_spec_renders_to_a_valid_body(spec: JobSpec) -> None:
    body = fc.build_submit_body(_req(spec))
    submit_validator().validate(body)
    assert body["job"]["name"].endswith(".sf-J1")
    assert msgspec.json.decode(msgspec.json.encode(body)) == body  # plain JSON all the way


# -- files and errors ------------------------------------------------------------------------
def test_file_entries() -> None:
    f = msgspec.convert(
        {
            "name": "a/b.txt",
            "type": "-",
            "size": "12",
            "user": "u",
            "group": "g",
            "permissions": "rw-r--r--",
            "lastModified": "2026-01-01T00:00:00",
        },
        fc.WireFile,
    )
    assert fc.file_entry(f) == FileEntry("b.txt", "file", 12, "2026-01-01T00:00:00", "rw-r--r--")
    assert set(fc.FILE_TYPES) == {"-", "d", "l"}
    odd = msgspec.convert({"name": "p", "type": "p", "size": "?"}, fc.WireFile)
    assert fc.file_entry(odd).type == "other" and fc.file_entry(odd).size == 0


def test_auth_struct_names_places_not_secrets() -> None:
    auth = msgspec.convert(
        {"client_id": "c", "token_url": "https://x/token", "client_secret_file": "/s"}, fc.Auth
    )
    assert auth.client_secret_env is None
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"client_id": "c", "token_url": "u", "client_secret": "oops"}, fc.Auth)


def test_registry_path() -> None:
    from adapters.registry import adapter_class

    assert (
        adapter_class("firecrest") is fc.FirecrestAdapter
        and fc.FirecrestAdapter.kind == "firecrest"
    )


def test_spec_file_is_where_we_think() -> None:
    assert "PostJobSubmitRequest" in spec()["components"]["schemas"]


def test_the_schema_check_has_teeth() -> None:
    with pytest.raises(jsonschema.ValidationError):
        submit_validator().validate({"job": {"script": "#!/bin/bash\n"}})  # no workingDirectory
    with pytest.raises(jsonschema.ValidationError):
        submit_validator().validate({"job": {"workingDirectory": "/", "name": 5}})


# -- details mutation testing found unchecked (issue 16) -------------------------------------
def test_a_job_state_given_as_a_one_word_list_is_read() -> None:
    # Slurm's REST API (behind FirecREST) sends job_state as a list, most often of one word
    s = fc.job_status(_job(status={"state": ["FAILED"], "exitCode": 1}))
    assert s is not None and (s.native_id, s.state, s.native_state, s.exit_code) == ("7", "FAILED", "FAILED", 1)


def test_a_pbs_job_finished_with_a_nonzero_exit_code_failed() -> None:
    s = fc.job_status(_job(status={"state": "F", "exitCode": 2}))
    assert s is not None and (s.state, s.exit_code) == ("FAILED", 2)


def test_an_unknown_job_state_is_logged_with_the_job_and_its_word(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="superfed.adapters.firecrest"):
        assert fc.job_status(_job(jobId="4242", status={"state": "MARTIAN"})) is None
    (record,) = caplog.records
    assert "4242" in record.getMessage() and "'MARTIAN'" in record.getMessage()


def _service(kind: str, state: str, path: str | None = None, message: str | None = None) -> dict[str, Any]:
    """A ServiceHealth entry that health_word reads as ``state`` (healthy/slow/unhealthy/unchecked)."""
    checked = None if state == "unchecked" else "2026-01-01T00:00:00Z"
    healthy = {"healthy": True, "slow": True, "unhealthy": False, "unchecked": None}[state]
    latency = fc.SLOW_CHECK_S + 1 if state == "slow" else 0.1
    entry = {"serviceType": kind, "healthy": healthy, "latency": latency, "lastChecked": checked}
    return {**entry, "path": path, "message": message}


@pytest.mark.parametrize(
    ("first", "then", "state"),
    [
        ("healthy", "slow", "degraded"),
        ("slow", "healthy", "degraded"),
        ("slow", "unchecked", "unknown"),
        ("unchecked", "slow", "unknown"),
        ("unchecked", "unhealthy", "down"),
        ("unhealthy", "unchecked", "down"),
        ("healthy", "unhealthy", "down"),
    ],
)
def test_a_component_is_as_bad_as_its_worst_service_in_either_order(first: str, then: str, state: str) -> None:
    h = fc.parse_health(
        _systems(_service("filesystem", first, "/home"), _service("filesystem", then, "/scratch")), ["daint"]
    )
    assert {c.name: c.state for c in h.components} == {"filesystem": state}


def test_health_details_name_the_system_and_path_and_services_of_unknown_types_keep_their_name() -> None:
    h = fc.parse_health(
        _systems(
            _service("scheduler", "healthy"),
            _service("filesystem", "unhealthy", "/scratch", message="lustre hung"),
            _service("database", "slow"),  # a service type this broker has no name for
        ),
        ["daint"],
    )
    assert [(c.name, c.state, c.detail) for c in h.components] == [
        ("compute", "up", "daint: healthy"),
        ("database", "degraded", "daint: slow"),
        ("filesystem", "down", "daint /scratch: lustre hung"),
    ]
    assert h.incidents == []


def test_a_system_without_health_does_not_hide_the_next_ones() -> None:
    systems = msgspec.convert(
        {"systems": [{"name": "daint", "servicesHealth": [_service("scheduler", "unhealthy")]}]}, fc.WireSystems
    )
    h = fc.parse_health(systems, ["eiger", "daint"])
    assert [(c.name, c.state, c.detail) for c in h.components] == [("compute", "down", "daint: unhealthy")]
    alone = fc.parse_health(systems, ["eiger"])
    assert [(c.name, c.state, c.detail) for c in alone.components] == [
        ("compute", "unknown", "eiger: no health reported")
    ]


@pytest.mark.parametrize(("name", "shown"), [("sub/", "sub"), ("/scratch/u/INDEX", "INDEX"), ("a/b/", "b")])
def test_file_names_are_their_last_path_component(name: str, shown: str) -> None:
    assert fc.file_entry(msgspec.convert({"name": name, "type": "d"}, fc.WireFile)).name == shown


def _response(status: int, body: bytes) -> httpx.Response:
    return httpx.Response(status, content=body, request=httpx.Request("GET", "https://firecrest.example/x"))


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        pytest.param(400, b'{"message": "  Job submission failed: quota exceeded\\n"}',
                     "Job submission failed: quota exceeded", id="message"),
        pytest.param(401, b'{"error": "invalid_grant", "error_description": "Token is not active"}',
                     "invalid_grant: Token is not active", id="keycloak"),
        pytest.param(401, b'{"error": "invalid_client"}', "invalid_client", id="keycloak-bare"),
        pytest.param(401, b'{"error": "invalid_client", "error_description": ""}', "invalid_client",
                     id="keycloak-empty"),
        pytest.param(502, b"<html><body>Bad Gateway</body></html>", "Bad Gateway", id="html"),
        pytest.param(500, b"upstream connect error", "upstream connect error", id="text"),
        pytest.param(503, b'["not", "an", "object"]', "Service Unavailable", id="list"),
    ],
)  # fmt: skip
def test_firecrest_message_is_firecrests_or_keycloaks_own_words(status: int, body: bytes, message: str) -> None:
    assert firecrest_message(_response(status, body)) == message
