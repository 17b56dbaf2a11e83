"""Pure translations of the SF API adapter and the shared Slurm vocabulary, entry by entry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from adapters.errors import (
    ComponentDown,
    NotFound,
    SiteOverloaded,
    SiteRejected,
    SiteUnavailable,
)
from adapters.sfapi import translate as t
from adapters.sfapi.auth import default_token_url, refusal_reason
from adapters.slurm import STATE_MAP, parse_exit_code, psij_state, render_sbatch
from simulators.sfapi.sbatch import parse_directives, parse_nodes, parse_time
from tests.support.strategies import job_specs

# PROTOCOL.md §4.1: "active", "degraded", "unavailable", "other" (StatusValue).
DOCUMENTED_STATUS = {"active", "degraded", "unavailable", "other"}
# PROTOCOL.md §5: the full Slurm state set sfapi_client models.
SLURM_STATES = {
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "CONFIGURING", "COMPLETING", "DEADLINE", "FAILED",
    "NODE_FAIL", "OUT_OF_MEMORY", "PENDING", "PREEMPTED", "RUNNING", "RESV_DEL_HOLD",
    "REQUEUE_FED", "REQUEUE_HOLD", "REQUEUED", "RESIZING", "REVOKED", "SIGNALING",
    "SPECIAL_EXIT", "STAGE_OUT", "STOPPED", "SUSPENDED", "TIMEOUT",
}  # fmt: skip


def test_health_map_is_the_documented_set() -> None:
    assert set(t.HEALTH_MAP) == DOCUMENTED_STATUS


@pytest.mark.parametrize(
    ("word", "state"),
    [("active", "up"), ("degraded", "degraded"), ("unavailable", "down"), ("other", "unknown")],
)
def test_health_map_entries(word: str, state: str) -> None:
    assert t.HEALTH_MAP[word] == state
    assert t.health_of(word.upper()) == state


def test_undocumented_health_word_is_unknown() -> None:
    assert t.health_of("maintenance") == "unknown"
    assert t.health_of(None) == "unknown"


def test_state_map_covers_every_slurm_state() -> None:
    assert set(STATE_MAP) == SLURM_STATES


@pytest.mark.parametrize(
    ("native", "psij"),
    [
        ("BOOT_FAIL", "FAILED"), ("CANCELLED", "CANCELED"), ("COMPLETED", "COMPLETED"),
        ("CONFIGURING", "ACTIVE"), ("COMPLETING", "ACTIVE"), ("DEADLINE", "FAILED"),
        ("FAILED", "FAILED"), ("NODE_FAIL", "FAILED"), ("OUT_OF_MEMORY", "FAILED"),
        ("PENDING", "QUEUED"), ("PREEMPTED", "FAILED"), ("RUNNING", "ACTIVE"),
        ("RESV_DEL_HOLD", "HELD"), ("REQUEUE_FED", "QUEUED"), ("REQUEUE_HOLD", "HELD"),
        ("REQUEUED", "QUEUED"), ("RESIZING", "ACTIVE"), ("REVOKED", "CANCELED"),
        ("SIGNALING", "ACTIVE"), ("SPECIAL_EXIT", "HELD"), ("STAGE_OUT", "ACTIVE"),
        ("STOPPED", "HELD"), ("SUSPENDED", "HELD"), ("TIMEOUT", "FAILED"),
    ],
)  # fmt: skip
def test_state_map_entries(native: str, psij: str) -> None:
    assert STATE_MAP[native] == psij
    assert psij_state(native) == psij


@pytest.mark.parametrize(
    ("native", "psij"),
    [
        ("CANCELLED by 123", "CANCELED"),
        ("CANCELLED by 0", "CANCELED"),
        ("RUNNING+", "ACTIVE"),
        ("pending", "QUEUED"),
        ("BOGUS", None),
        ("", None),
    ],
)
def test_native_words(native: str, psij: str | None) -> None:
    assert psij_state(native) == psij


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("0:0", 0),
        ("3:0", 3),
        ("0:15", 143),
        ("0:9", 137),
        ("1:9", 1),
        ("255:0", 255),
        ("7", 7),
        (5, 5),
        (None, None),
        ("", None),
        ("x:y", None),
    ],
)
def test_parse_exit_code(value: str | int | None, code: int | None) -> None:
    assert parse_exit_code(value) == code


@settings(max_examples=200, deadline=None)
@given(job_specs())
def test_every_spec_renders_a_script_sbatch_accepts(spec) -> None:  # type: ignore[no-untyped-def]
    script = render_sbatch(spec, "tag-1", account="m0001")
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    directive_lines = [ln for ln in lines if ln.lstrip().startswith("#SBATCH")]
    assert all(ln.startswith("#SBATCH ") for ln in directive_lines)  # never indented
    d = parse_directives(script)  # the simulator's own parser: raises on anything sbatch refuses
    assert d.options["comment"] == "superfed:tag-1"
    assert parse_nodes(d.options["nodes"]) == spec.nodes
    assert d.options["account"] == "m0001"
    if spec.attributes.duration:
        assert parse_time(d.options["time"]) == spec.attributes.duration
    else:
        assert "time" not in d.options
    assert len(directive_lines) == len([ln for ln in lines[1:] if ln.startswith("#SBATCH")])
    assert d.body.strip().endswith(lines[-1].strip())  # the command is the job's body


FAILED = "sbatch: error: Batch job submission failed: "


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (FAILED + "Unable to contact slurm controller (connect failure)", ComponentDown),
        ("sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying",
         SiteOverloaded),
        (FAILED + "Socket timed out on send/recv operation", SiteUnavailable),
        ("ssh: connect to host perlmutter.nersc.gov port 22: Connection timed out", ComponentDown),
        ("ssh: connect to host perlmutter.nersc.gov port 22: Connection refused", ComponentDown),
        ("ls: cannot access '/x': Input/output error", ComponentDown),
        ("ls: cannot access '/x': No such file or directory", NotFound),
        ("scancel: error: Kill job error on job id 1: Invalid job id specified", NotFound),
        ("sbatch: error: Job request does not match any supported policy.", SiteRejected),
        (FAILED + "Requested time limit is invalid", SiteRejected),
    ],
)  # fmt: skip
def test_classify(message: str, error: type) -> None:
    exc = t.classify(message, "nersc")
    assert type(exc) is error and exc.message == message and exc.site == "nersc"


def test_error_rules_are_all_tested() -> None:
    assert [n for n, _ in t.ERROR_RULES] == [
        "Unable to contact slurm controller", "Slurm temporarily unable to accept job",
        "Socket timed out", "Connection timed out", "Connection refused", "Input/output error",
        "No such file or directory", "Invalid job id specified",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (
            '{"status": "ok", "jobid": "12", "error": null}',
            {"status": "ok", "jobid": "12", "error": None},
        ),
        ('Submitted: {"status": "ok", "jobid": "12"}', {"status": "ok", "jobid": "12"}),
        ("ok", {"status": "ok", "error": "ok"}),
        ("boom", {"status": "error", "error": "boom"}),
        (None, {}),
        ("[1]", {}),
    ],
)
def test_task_result(raw: str | None, parsed: dict[str, object]) -> None:
    assert t.task_result(raw) == parsed


def test_job_status_rows() -> None:
    done = t.JobRow(
        jobid="7", state="FAILED", exitcode="3:0", reason="None", comment="superfed:abc"
    )
    st = t.job_status(done, {"7"})
    assert st is not None and (st.state, st.exit_code, st.tag, st.message) == (
        "FAILED",
        3,
        "abc",
        None,
    )
    running = t.job_status(t.JobRow(jobid="8", state="RUNNING", exitcode="0:0"))
    assert running is not None and running.exit_code is None  # no exit code before the end
    pending = t.job_status(t.JobRow(jobid="9", state="PENDING", reason="Priority"))
    assert pending is not None and pending.message == "Priority"
    assert t.job_status(t.JobRow(jobid="7.batch", state="COMPLETED")) is None  # a job step
    assert t.job_status(t.JobRow(jobid="10", state="WEIRD")) is None  # unknown word: skipped
    assert t.job_status(t.JobRow(jobid="11", state="RUNNING"), {"7"}) is None  # not asked for


def test_tag_matches() -> None:
    assert t.tag_matches(t.JobRow(comment="superfed:x1"), "x1")
    assert t.tag_matches(t.JobRow(jobname="x1"), "x1")
    assert not t.tag_matches(t.JobRow(comment="superfed:x2", jobname="other"), "x1")


def test_file_entries() -> None:
    raw = [
        t.DirEntryWire(perms="drwxr-xr-x", size=4096, date="2024-01-01T00:00:00", name="."),
        t.DirEntryWire(perms="drwxr-xr-x", size=4096, name=".."),
        t.DirEntryWire(perms="-rw-r--r--", size=12.0, name="a.txt"),
        t.DirEntryWire(perms="lrwxrwxrwx", size=4, name="/g/link -> /g/target"),
        t.DirEntryWire(perms="drwx------", size=4096, name="sub"),
        t.DirEntryWire(perms="srwx------", size=0, name="sock"),
    ]
    got = {e.name: (e.type, e.size, e.permissions) for e in t.file_entries(raw)}
    assert got == {
        "a.txt": ("file", 12, "rw-r--r--"),
        "link": ("link", 4, "rwxrwxrwx"),
        "sub": ("directory", 4096, "rwx------"),
        "sock": ("other", 0, "rwx------"),
    }
    [single] = t.file_entries(
        [t.DirEntryWire(perms="-rw-------", size=1, name="//global/x/file.txt")]
    )
    assert single.name == "file.txt"


def test_components_and_incidents() -> None:
    resources = [
        t.StatusWire("perlmutter", "degraded", "System Degraded", "compute", ["rolling reboots"]),
        t.StatusWire("global_homes", "active", system_type="filesystem"),
        t.StatusWire("dna", "unavailable", "System Unavailable", "filesystem"),
        t.StatusWire("ssh-proxy", "active", system_type="service"),
        t.StatusWire("archive", "other", system_type="storage"),
        t.StatusWire("jupyter", "unavailable", system_type="service"),  # not one we report
    ]
    comps = {c.name: c for c in t.components_of(resources, ["perlmutter", "dtns"])}
    assert {n: c.state for n, c in comps.items()} == {
        "compute": "degraded", "compute:dtns": "unknown", "filesystem": "down",
        "storage": "unknown", "login": "up"}  # fmt: skip
    assert "rolling reboots" in comps["compute"].detail and "dna" in comps["filesystem"].detail
    kinds = t.component_names(resources, ["perlmutter"])
    outages = [
        t.OutageWire(
            "perlmutter",
            "2025-01-01T08:00:00-08:00",
            "2025-01-01T12:00:00-08:00",
            "System Degraded",
            "reboots",
            "Active",
            "degr",
        ),
        t.OutageWire("perlmutter", status="Completed"),
        t.OutageWire("jupyter", status="Active"),
    ]
    planned = [
        t.OutageWire("dna", "2025-02-01T08:00:00-08:00", status="Planned", description="Maint")
    ]
    incidents = t.incidents_of(outages, planned, ["perlmutter"], kinds)
    assert [(i.component, i.kind, i.status) for i in incidents] == [
        ("compute", "unplanned", "active"), ("filesystem", "planned", "planned")]  # fmt: skip
    assert incidents[0].summary == "perlmutter: System Degraded - reboots"


def test_token_url_defaults_and_refusals() -> None:
    assert (
        default_token_url("https://api.nersc.gov/api/v1.2") == "https://oidc.nersc.gov/c2id/token"
    )
    assert (
        default_token_url("https://api-dev.nersc.gov/api/v1.2")
        == "https://oidc-dev.nersc.gov/c2id/token"
    )
    assert default_token_url("http://127.0.0.1:9101/api/v1.2") == "http://127.0.0.1:9101/c2id/token"
    assert (
        refusal_reason(b'{"error":"invalid_client","error_description":"bad"}')
        == "invalid_client: bad"
    )
    assert refusal_reason(b"<html>nope</html>") == "<html>nope</html>"
    assert refusal_reason(b"[]") == "no reason given"


# -- details mutation testing found unchecked (issue 16) -------------------------------------
def test_an_exit_code_without_a_signal_is_the_code() -> None:
    assert parse_exit_code("0") == 0 and parse_exit_code("0:0") == 0


def test_undocumented_words_are_logged_with_what_was_seen(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="superfed.adapters.sfapi"):
        assert t.health_of("maintenance") == "unknown"
        assert t.job_status(t.JobRow(jobid="4242", state="MARTIAN")) is None
    health, job = (r.getMessage() for r in caplog.records)
    assert "'maintenance'" in health and "not documented" in health
    assert "4242" in job and "'MARTIAN'" in job


def test_a_job_keeps_its_id_and_slurms_own_words() -> None:
    st = t.job_status(t.JobRow(jobid="12", state="CANCELLED by 5001", exitcode="0:15", reason=""))
    assert st is not None
    assert (st.native_id, st.state, st.native_state, st.exit_code, st.message) == (
        "12", "CANCELED", "CANCELLED by 5001", 143, None)  # fmt: skip


def test_a_task_result_with_nested_json_is_read_whole() -> None:
    raw = 'sacct: {"status": "ok", "output": [{"jobid": "1", "state": "RUNNING"}], "error": null}'
    assert t.task_result(raw) == {"status": "ok", "output": [{"jobid": "1", "state": "RUNNING"}], "error": None}


@pytest.mark.parametrize(
    ("name", "shown"),
    [("my link -> /global/target", "my link"), ("/global/cfs/paper/MAIN.TEX", "MAIN.TEX")],
)
def test_listed_names_are_kept_whole(name: str, shown: str) -> None:
    perms = "lrwxrwxrwx" if " -> " in name else "-rw-r--r--"
    [entry] = t.file_entries([t.DirEntryWire(perms=perms, size=1, name=name)])
    assert entry.name == shown


def _resources() -> list[t.StatusWire]:
    return [
        t.StatusWire("perlmutter", "active", system_type="compute"),
        t.StatusWire("dtns", "active", system_type="compute"),
        t.StatusWire("dtn01", "active", system_type="compute"),  # a compute system we do not use
        t.StatusWire("dna", "active", system_type="filesystem"),
        t.StatusWire("ssh-proxy", "active", system_type="service"),
        t.StatusWire("jupyter", "active", system_type="service"),
        t.StatusWire("spin", "active"),  # no system_type at all
    ]


def test_component_names_say_where_each_resources_outages_are_reported() -> None:
    assert t.component_names(_resources(), ["perlmutter", "dtns"]) == {
        "perlmutter": "compute",
        "dtns": "compute:dtns",
        "dna": "filesystem",
        "ssh-proxy": "login",
    }


def test_incidents_keep_extended_and_unstated_planned_outages_with_their_times() -> None:
    kinds = t.component_names(_resources(), ["perlmutter"])
    outages = [
        t.OutageWire("perlmutter", "2025-01-01T08:00:00-08:00", "2025-01-01T12:00:00-08:00", status="Extended"),
        t.OutageWire("dtn01", status="Active", description="not ours"),
    ]
    planned = [t.OutageWire("dna", end_at="2025-02-01T12:00:00-08:00")]  # planned, no status, no start
    got = t.incidents_of(outages, planned, ["perlmutter"], kinds)
    assert [(i.id, i.summary, i.component, i.kind, i.status, i.start, i.end) for i in got] == [
        ("perlmutter:2025-01-01T08:00:00-08:00", "perlmutter: outage", "compute", "unplanned", "active",
         "2025-01-01T08:00:00-08:00", "2025-01-01T12:00:00-08:00"),
        ("dna:", "dna: outage", "filesystem", "planned", "planned", None, "2025-02-01T12:00:00-08:00"),
    ]  # fmt: skip


def test_the_slurm_job_name_is_the_specs_made_safe_else_the_tag() -> None:
    from adapters.psij import JobSpec
    from adapters.slurm import job_name

    assert job_name(JobSpec(executable="x", name="my run!"), "t1") == "my_run_"
    assert job_name(JobSpec(executable="x", name="n" * 150), "t1") == "n" * 100  # Slurm's limit here
    assert job_name(JobSpec(executable="x"), "t1") == "t1"
