"""The PSI/J executor's pure parts: a PSI/J JobSpec as the broker's request body, a broker job as
PSI/J statuses, and its registration with PSI/J (tests/e2e/test_psij_executor.py runs it)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from psij import JobAttributes, JobSpec, JobState, ResourceSpecV1
from psij.exceptions import InvalidJobException

from broker.psij_executor import broker_body, psij_statuses

ROOT = Path(__file__).resolve().parents[2]


def test_a_full_spec_keeps_psij_field_names_and_splits_off_placement_hints() -> None:
    spec = JobSpec(
        name="run", executable="/usr/bin/python3", arguments=["-c", "print(1)"], directory="/work",
        environment={"N": 4, "MODE": "fast"}, inherit_environment=False,
        stdout_path="/work/out", stderr_path="/work/err",
        resources=ResourceSpecV1(node_count=2, processes_per_node=4, gpu_cores_per_process=1, exclusive_node_use=True),
        attributes=JobAttributes(duration=timedelta(hours=1, seconds=30), queue_name="debug", account="m0001",
                                 custom_attributes={"filesystems": "home", "superfed.sites": "nersc, alcf",
                                                    "superfed.strategy": "round-robin"}),
    )
    assert broker_body(spec, default_project="other") == {
        "project": "m0001",
        "spec": {
            "executable": "/usr/bin/python3", "arguments": ["-c", "print(1)"], "inherit_environment": False,
            "name": "run", "environment": {"N": "4", "MODE": "fast"}, "directory": "/work",
            "stdout_path": "/work/out", "stderr_path": "/work/err",
            # as given: the broker derives what PSI/J would infer (process_count) itself
            "resources": {"exclusive_node_use": True, "node_count": 2, "processes_per_node": 4,
                          "gpu_cores_per_process": 1},
            "attributes": {"duration": 3630, "queue_name": "debug",
                           "custom_attributes": {"filesystems": "home"}},
        },
        "placement": {"sites": ["nersc", "alcf"], "strategy": "round-robin"},
    }


def test_the_project_falls_back_to_the_executors_and_is_required() -> None:
    spec = JobSpec(executable="/bin/date")  # PSI/J names it after its executable
    body = broker_body(spec, default_project="m0002")
    assert body["project"] == "m0002" and body["spec"]["name"] == "date"
    with pytest.raises(InvalidJobException, match="project"):
        broker_body(spec, default_project=None)


@pytest.mark.parametrize("field", ["stdin_path", "pre_launch", "post_launch"])
def test_what_a_facilitys_batch_script_cannot_honour_is_refused(field: str) -> None:
    with pytest.raises(InvalidJobException, match=field):
        broker_body(JobSpec(executable="/bin/date", **{field: "/tmp/x"}), "m0001")
    with pytest.raises(InvalidJobException, match="launcher"):
        broker_body(JobSpec(executable="/bin/date", launcher="mpirun"), "m0001")


def job(state: str, *history: str, **fields: object) -> dict[str, object]:
    return {"id": "j1", "state": state, "history": [{"state": s, "at": f"2026-01-01T00:00:0{i}Z", "detail": None}
                                                   for i, s in enumerate(history)], **fields}


def test_broker_states_become_psij_states_with_every_recorded_step() -> None:
    # NEW (at the broker, no facility yet) is PSI/J's QUEUED: PSI/J's NEW is "not submitted"
    *_, only = psij_statuses(job("NEW", "NEW"))
    assert only.state == JobState.QUEUED and only.metadata is not None and only.metadata["broker_state"] == "NEW"
    # a job that ran and failed between two polls: the ACTIVE the broker saw is reported too
    steps = psij_statuses(job("FAILED", "NEW", "QUEUED", "ACTIVE", "FAILED", exit_code=3, message="boom",
                              site="nersc", native_id="42"))
    assert [s.state for s in steps] == [JobState.QUEUED, JobState.QUEUED, JobState.ACTIVE, JobState.FAILED]
    assert steps[2].time == 1767225602.0  # the broker's time of the step, not the poll's
    last = steps[-1]
    assert (last.exit_code, last.message, last.metadata) == (
        3, "boom", {"site": "nersc", "native_id": "42", "broker_state": "FAILED"})
    assert [s.state for s in psij_statuses(job("CANCELED", "NEW", "HELD", "CANCELED"))][-2:] == [
        JobState.QUEUED, JobState.CANCELED]


def test_psij_finds_the_executor_by_name() -> None:
    # a fresh interpreter with the checkout on sys.path (as an installed wheel has site-packages)
    code = ("from psij import JobExecutor; e = JobExecutor.get_instance('superfed', url='http://127.0.0.1:9'); "
            "print(type(e).__name__, e.name)")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(ROOT), "SUPERFED_TOKEN": "t" * 20},
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert out.stdout.split() == ["SuperfedJobExecutor", "superfed"], out.stderr[-2000:]
