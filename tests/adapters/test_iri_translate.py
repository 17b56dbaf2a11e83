"""The IRI adapter's pure translations, entry by entry, against the v1 spec's own enums and
JobSpec schema."""

from __future__ import annotations

import functools
from typing import Any

import httpx
import msgspec
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS31Validator

from adapters import iri
from adapters.errors import ComponentDown, NotFound, SiteOverloaded, SiteRejected
from adapters.iri import (
    FILE_TYPES,
    HEALTH_MAP,
    STATE_MAP,
    TASK_FINAL,
    WireFile,
    WireIncident,
    WireJob,
    WireResource,
    WireTask,
    build_job,
    file_entry,
    filesystem_name,
    health_state,
    job_name,
    parse_health,
    parse_status,
    psij_state,
    tag_from_name,
    task_error,
)
from adapters.iri import translate as iri_translate
from adapters.psij import JobAttributes, JobSpec, ResourceSpec
from adapters.types import SubmitRequest
from tests.support.specs import spec_path
from tests.support.strategies import job_specs


@functools.cache
def spec() -> dict[str, Any]:
    return yaml.safe_load(spec_path("iri/all_spec_v1.yaml").read_text())


def enum(name: str) -> set[str]:
    return set(spec()["components"]["schemas"][name]["enum"])


@functools.cache
def jobspec_validator() -> OAS31Validator:
    root = {"components": spec()["components"], "$ref": "#/components/schemas/JobSpec"}
    return OAS31Validator(root)


def assert_valid_jobspec(body: dict[str, Any]) -> None:
    # through JSON, as it goes on the wire
    wire = msgspec.json.decode(msgspec.json.encode(body))
    errors = [e.message for e in jobspec_validator().iter_errors(wire)]
    assert errors == [], (errors, wire)


# -- tables ---------------------------------------------------------------------------------
def test_state_map_covers_exactly_the_spec_job_states() -> None:
    assert set(STATE_MAP) == enum("JobState")


@pytest.mark.parametrize(
    ("iri_state", "psij"),
    [
        ("new", "NEW"),
        ("queued", "QUEUED"),
        ("held", "HELD"),
        ("active", "ACTIVE"),
        ("completed", "COMPLETED"),
        ("failed", "FAILED"),
        ("canceled", "CANCELED"),
    ],
)
def test_state_map_entries(iri_state: str, psij: str) -> None:
    assert STATE_MAP[iri_state] == psij
    assert psij_state(iri_state.upper()) == psij


def test_unknown_job_states_are_not_guessed() -> None:
    assert psij_state("cancelled") is None and psij_state(None) is None and psij_state("") is None


def test_health_map_covers_exactly_the_spec_statuses() -> None:
    assert set(HEALTH_MAP) == enum("Status")


@pytest.mark.parametrize(
    ("status", "health"),
    [
        ("up", "up"),
        ("degraded", "degraded"),
        ("down", "down"),
        ("unknown", "unknown"),
        ("UP", "up"),
        ("maintenance", "unknown"),
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_health_entries(status: str | None, health: str) -> None:
    assert health_state(status) == health


def test_task_final_states_are_spec_task_statuses() -> None:
    assert enum("TaskStatus") - TASK_FINAL == {"pending", "active"}


@pytest.mark.parametrize(
    ("wire", "kind"),
    [("file", "file"), ("directory", "directory"), ("symlink", "link"), ("link", "link")],
)
def test_file_types(wire: str, kind: str) -> None:
    assert FILE_TYPES[wire] == kind
    assert file_entry(WireFile(name="x", type=wire, size="12")).type == kind


def test_file_entry_odd_values() -> None:
    e = file_entry(
        WireFile(
            name="p",
            type="fifo",
            size="huge",
            last_modified="2026-01-01T00:00:00Z",
            permissions="rw-r--r--",
        )
    )
    assert (e.type, e.size, e.mtime, e.permissions) == (
        "other",
        0,
        "2026-01-01T00:00:00Z",
        "rw-r--r--",
    )


@pytest.mark.parametrize(
    ("path", "fs"),
    [
        ("/eagle/p/x", "eagle"),
        ("/lus/eagle/p", "eagle"),
        ("/home/u/f", "home"),
        ("/", ""),
        ("grand/x", "grand"),
    ],
)
def test_filesystem_of_a_path(path: str, fs: str) -> None:
    assert filesystem_name(path) == fs


# -- the tag ---------------------------------------------------------------------------------
def test_tag_rides_in_the_job_name() -> None:
    assert job_name(JobSpec(executable="x", name="my job/1"), "abc") == "my_job_1.sf-abc"
    assert job_name(JobSpec(executable="x"), "abc") == "job.sf-abc"
    assert tag_from_name("a.sf-b.sf-c") == "c"
    assert (
        tag_from_name("plain") is None
        and tag_from_name(None) is None
        and tag_from_name("x.sf-") is None
    )


@given(st.text(min_size=1, max_size=300), st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True))
def test_any_name_keeps_its_tag(name: str, tag: str) -> None:
    out = job_name(JobSpec(executable="x", name=name[:200]), tag)
    assert tag_from_name(out) == tag
    assert out.isprintable() and " " not in out and len(out) <= 240


# -- build_job -------------------------------------------------------------------------------
def alcf_request(**spec_kw: Any) -> SubmitRequest:
    spec = JobSpec(
        executable="/bin/bash",
        arguments=["-lc", "echo Start; sleep 10; echo End"],
        name="my_job",
        stdout_path="/home/u/logs",
        stderr_path="/home/u/logs",
        resources=ResourceSpec(node_count=1),
        attributes=JobAttributes(
            duration=300,
            queue_name="debug",
            account="proj",
            custom_attributes={"filesystems": "home:eagle"},
        ),
        **spec_kw,
    )
    # the site maps project m0001 to ALCF's project "proj"; the spec may name that one only
    return SubmitRequest(tag="t-1", spec=spec, system="polaris", project="m0001", account="proj")


def test_build_job_matches_alcfs_user_guide_example() -> None:
    body = build_job(alcf_request())
    assert body == {
        "executable": "/bin/bash",
        "arguments": ["-lc", "echo Start; sleep 10; echo End"],
        "name": "my_job.sf-t-1",
        "inherit_environment": True,
        "stdout_path": "/home/u/logs",
        "stderr_path": "/home/u/logs",
        "resources": {"node_count": 1, "exclusive_node_use": True},
        "attributes": {
            "duration": 300,
            "queue_name": "debug",
            "account": "proj",
            "custom_attributes": {"filesystems": "home:eagle"},
        },
    }
    assert_valid_jobspec(body)


def test_build_job_account_falls_back_to_the_project_and_drops_empty_fields() -> None:
    req = SubmitRequest(
        tag="x", spec=JobSpec(executable="a.out"), system="polaris", project="m0002"
    )
    body = build_job(req)
    assert body["attributes"] == {"account": "m0002"}
    assert body["resources"] == {"exclusive_node_use": True}
    assert "environment" not in body and "directory" not in body
    assert_valid_jobspec(body)


def test_build_job_maps_every_resource_field() -> None:
    r = ResourceSpec(
        node_count=2,
        process_count=8,
        processes_per_node=4,
        cpu_cores_per_process=2,
        gpu_cores_per_process=0,
        exclusive_node_use=False,
        memory=2**30,
    )
    req = SubmitRequest(
        tag="x",
        spec=JobSpec(
            executable="a.out",
            resources=r,
            directory="/eagle/p",
            environment={"A": "1"},
            inherit_environment=False,
        ),
        system="polaris",
        project="m0001",
    )
    body = build_job(req)
    assert body["resources"] == {
        "node_count": 2,
        "process_count": 8,
        "processes_per_node": 4,
        "cpu_cores_per_process": 2,
        "exclusive_node_use": False,
        "memory": 2**30,
    }
    assert body["directory"] == "/eagle/p" and body["environment"] == {"A": "1"}
    assert body["inherit_environment"] is False
    assert_valid_jobspec(body)


@settings(max_examples=200, deadline=None)
@given(job_specs(), st.sampled_from(["home", "home:eagle", "eagle:grand"]), st.integers(1, 86400))
def test_every_spec_renders_to_a_valid_iri_jobspec(spec: JobSpec, fs: str, duration: int) -> None:
    a = spec.attributes
    custom = {**a.custom_attributes, "filesystems": fs}
    attrs = msgspec.structs.replace(
        a, account=a.account or "m0001", duration=a.duration or duration, custom_attributes=custom
    )
    spec = msgspec.structs.replace(spec, attributes=attrs)
    body = build_job(SubmitRequest(tag="0123abcd", spec=spec, system="polaris", project="m0001"))
    assert_valid_jobspec(body)
    assert body["attributes"]["custom_attributes"]["filesystems"] == fs
    assert tag_from_name(body["name"]) == "0123abcd"
    assert " ".join([body["executable"], *body["arguments"]]) == " ".join(
        [spec.executable, *spec.arguments]
    )


# -- parsing ---------------------------------------------------------------------------------
def wire_job(state: str, **meta: Any) -> WireJob:
    return msgspec.convert(
        {
            "id": "1.pbs",
            "status": {
                "state": state,
                "exit_code": meta.pop("exit", None),
                "message": "m",
                "meta_data": meta or None,
            },
        },
        WireJob,
    )


def test_parse_status_keeps_the_pbs_letter_and_the_tag() -> None:
    st_ = parse_status(
        wire_job("canceled", job_state="F", Exit_status=265, Job_Name="x.sf-t9", exit=265)
    )
    assert st_ is not None
    assert (st_.state, st_.native_state, st_.exit_code, st_.tag, st_.message) == (
        "CANCELED",
        "F",
        265,
        "t9",
        "m; exit 265: killed by SIGKILL, as qdel does (PBS reports 256 + the signal's number, 9)",
    )
    plain = parse_status(wire_job("active"))
    assert plain is not None and plain.native_state == "active" and plain.tag is None
    spec_named = msgspec.convert(
        {"id": "2", "status": {"state": "queued"}, "job_spec": {"name": "a.sf-q"}}, WireJob
    )
    assert parse_status(spec_named).tag == "q"  # type: ignore[union-attr]
    assert parse_status(wire_job("exploded")) is None
    assert parse_status(WireJob(id="3")) is None


def test_an_exit_pbs_chose_is_explained_and_the_programs_own_is_not() -> None:
    def message(code: int, **meta: Any) -> str | None:
        st_ = parse_status(wire_job("failed", exit=code, **meta))
        assert st_ is not None and st_.exit_code == code
        return st_.message

    assert message(-29, Exit_status=-29) == (
        "m; exit -29: killed by PBS for exceeding its walltime (JOB_EXEC_KILL_WALLTIME)"
    )
    assert message(271, Exit_status=271) == "m; exit 271: killed by SIGTERM (PBS reports 256 + the signal's number, 15)"
    assert message(3, Exit_status=3) == "m"  # the program's own exit status
    assert message(265) == "m"  # no PBS behind this IRI facility: 265 may be anything


def test_parse_health_groups_resources_and_keeps_open_incidents() -> None:
    resources = [
        WireResource(id="p", name="polaris", resource_type="compute", current_status="down"),
        WireResource(id="c", name="crux", resource_type="compute", current_status="up"),
        WireResource(id="e", name="eagle", resource_type="storage", current_status="up"),
        WireResource(id="h", name="home", resource_type="storage", current_status="degraded"),
        WireResource(id="w", name="web", resource_type="website", current_status="weird"),
    ]
    incidents = [
        WireIncident(
            id="i1",
            name="polaris down",
            type="unplanned",
            resolution="unresolved",
            resource_uris=["http://x/api/v1/status/resources/p"],
            start="2026-01-01T00:00:00Z",
        ),
        WireIncident(id="i2", name="old", resolution="completed"),
    ]
    h = parse_health(resources, incidents, ["polaris"])
    comps = {c.name: c for c in h.components}
    assert h.state == "down"
    assert (comps["compute"].state, comps["compute"].detail) == ("down", "polaris: down")
    assert comps["filesystem"].state == "degraded"
    assert comps["web"].state == "unknown"
    assert [(i.id, i.component, i.kind, i.status) for i in h.incidents] == [
        ("i1", "compute", "unplanned", "unresolved")
    ]


def test_parse_health_without_our_system_is_unknown() -> None:
    h = parse_health(
        [WireResource(id="c", name="crux", resource_type="compute", current_status="up")],
        [],
        ["polaris"],
    )
    assert h.state == "unknown"


def test_task_errors() -> None:
    missing = WireTask(
        id="t",
        status="failed",
        result={"output": "Error: ls: No such file or directory", "status_code": 404},
    )
    assert isinstance(task_error(missing, "/x", "s"), NotFound)
    refused = task_error(
        WireTask(id="t", status="failed", result={"output": "Error: nope"}), "/x", "s"
    )
    assert isinstance(refused, SiteRejected) and refused.message == "Error: nope"
    assert task_error(WireTask(id="t", status="canceled"), "/x", "s").message == "task canceled"


def test_auth_needs_exactly_one_source() -> None:
    assert iri.Auth(token_env="X").token_env == "X"
    for raw in ({}, {"token_env": "X", "token_file": "/f"}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(raw, iri.Auth)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"token": "secret"}, iri.Auth)


def test_the_jobspec_schema_check_has_teeth() -> None:
    for bad in (
        {"executable": "x", "bogus": 1},
        {"executable": ""},
        {"resources": {"node_count": 0}},
        {"attributes": {"custom_attributes": {"filesystems": 1}}},
    ):
        with pytest.raises(AssertionError):
            assert_valid_jobspec(bad)


# -- details mutation testing found unchecked (issue 16) -------------------------------------
def test_a_file_keeps_its_name() -> None:
    assert file_entry(WireFile(name="run.log", type="file", size="1")).name == "run.log"


@pytest.mark.parametrize(
    ("result", "error", "message", "status"),
    [
        pytest.param({"output": "Error: ls: cannot access '/x': No such file or directory"}, NotFound,
                     "/x: Error: ls: cannot access '/x': No such file or directory", 404, id="text-only"),
        pytest.param({"status_code": 404, "output": "gone"}, NotFound, "/x: gone", 404, id="code-only"),
        pytest.param({"status_code": 403, "error": "Permission denied"}, SiteRejected, "Permission denied", 403,
                     id="refused"),
        pytest.param({"status_code": 400, "output": "no such file or directory"}, SiteRejected,
                     "no such file or directory", 400, id="not-ls-words"),
    ],
)  # fmt: skip
def test_a_failed_task_says_what_failed_where(
    result: dict[str, Any], error: type[Exception], message: str, status: int
) -> None:
    exc = task_error(WireTask(id="t", status="failed", result=result), "/x", "alcf")
    assert type(exc) is error and (exc.message, exc.site, exc.status, str(exc)) == (
        message, "alcf", status, f"alcf: {message}")  # fmt: skip


@pytest.mark.parametrize(("path", "fs"), [("/lus", "lus"), ("/lus/eagle", "eagle"), ("lus/grand/p", "grand")])
def test_filesystem_of_a_lustre_path(path: str, fs: str) -> None:
    assert filesystem_name(path) == fs


def _answer(status: int, body: bytes, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers)


def test_a_problem_is_read_from_its_json() -> None:
    body = b'{"type": "https://x/problems/resource-unavailable", "title": "Unavailable", "detail": "polaris down"}'
    problem = iri_translate.problem_of(_answer(503, body))
    assert (problem.type, problem.title, problem.detail) == (
        "https://x/problems/resource-unavailable", "Unavailable", "polaris down")  # fmt: skip
    assert iri_translate.problem_of(_answer(502, b"<html>")) == iri_translate.WireProblem()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"title": "Conflict", "detail": "an earlier request is in progress"}', "an earlier request is in progress"),
        (b'{"detail": "an earlier request is in progress"}', "an earlier request is in progress"),
        (b'{"title": "Conflict"}', "Conflict"),
        (b"{}", "HTTP 409"),
    ],
)
def test_a_problems_detail_falls_back_to_its_title_then_the_status(body: bytes, detail: str) -> None:
    assert iri_translate.problem_detail(_answer(409, body)) == detail


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        pytest.param({"title": "Unavailable", "detail": "polaris is down"}, "polaris is down", id="detail"),
        pytest.param({"detail": "polaris is down"}, "polaris is down", id="detail-only"),
        pytest.param({"title": "Unavailable"}, "Unavailable", id="title-only"),
        pytest.param({}, "service unavailable", id="bare"),
    ],
)
def test_a_resource_that_is_down_is_a_component_down(fields: dict[str, str], detail: str) -> None:
    problem = msgspec.json.encode({"type": "https://x/problems/resource-unavailable", **fields})
    exc = iri_translate.unavailable_error(_answer(503, problem, **{"Retry-After": "30"}), "alcf")
    assert type(exc) is ComponentDown and (exc.message, exc.site, exc.status) == (detail, "alcf", 503)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        pytest.param(b'{"title": "Busy", "detail": "too many requests in flight"}', "too many requests in flight",
                     id="detail"),
        pytest.param(b'{"title": "Busy"}', "Busy", id="title-only"),
        pytest.param(b"<html>Service Unavailable</html>", "service unavailable", id="no-problem"),
    ],
)  # fmt: skip
def test_a_busy_service_is_overloaded_and_says_when_to_come_back(body: bytes, detail: str) -> None:
    exc = iri_translate.unavailable_error(_answer(503, body, **{"Retry-After": "30"}), "alcf")
    assert type(exc) is SiteOverloaded
    assert (exc.message, exc.site, exc.status, exc.retry_after) == (f"HTTP 503: {detail}", "alcf", 503, 30.0)
    assert iri_translate.unavailable_error(_answer(503, body), "alcf").retry_after is None  # none given
