"""The PSI/J executor ``superfed``: PSI/J programs, run as their own processes, submit through
the demo stack (``superfed demo``: Redis, the API, workers, three simulated facilities).

The programs find the executor the way PSI/J finds any: a ``psij-descriptors`` directory on
``sys.path``. An installed wheel puts it in site-packages; this checkout is an editable install
(setuptools' import hook, no path entry), so the programs get the checkout on PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Broker

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

# PSI/J's own getting-started example, word for word but for the executor's name
DOC_EXAMPLE = """\
from psij import Job, JobExecutor, JobSpec

ex = JobExecutor.get_instance('superfed')
job = Job(JobSpec(executable='/bin/date'))
ex.submit(job)
job.wait()
print(job.status.state, job.status.exit_code, job.native_id)
"""

# the rest of a JobSpec, status callbacks, a failing exit, a cancel, list()
FULL = """\
import json, sys
from datetime import timedelta
from psij import Job, JobAttributes, JobExecutor, JobSpec, JobState, ResourceSpecV1

url, token = sys.argv[1], sys.argv[2]
ex = JobExecutor.get_instance('superfed', url=url)
seen = {}
ex.set_job_status_callback(lambda job, status: seen.setdefault(job.id, []).append(str(status.state)))

failing = Job(JobSpec(
    name='psij-exit', executable='/bin/bash', arguments=['-c', 'sleep 30; exit $CODE'],
    environment={'CODE': 3}, directory='/tmp', stdout_path='/tmp/psij-exit.out',
    resources=ResourceSpecV1(node_count=1),
    attributes=JobAttributes(duration=timedelta(minutes=30), account='m0001',
                             custom_attributes={'superfed.site': 'nersc'}),
))
long = Job(JobSpec(executable='/bin/sleep', arguments=['600'],
                   attributes=JobAttributes(account='m0001')))
ex.submit(failing)
ex.submit(long)
long.wait(timeout=timedelta(minutes=2), target_states=[JobState.ACTIVE])
ex.cancel(long)
out = {}
for name, job in (('failing', failing), ('long', long)):
    status = job.wait(timeout=timedelta(minutes=2))
    assert status is not None, name + ' did not end'
    out[name] = {'state': str(status.state), 'exit_code': status.exit_code, 'id': job.native_id,
                 'seen': seen.get(job.id, []), 'meta': status.metadata}
out['listed'] = ex.list()
print(json.dumps(out))
"""


def run_program(b: Broker, text: str, tmp_path: Path, *args: str, **env: str) -> str:
    program = tmp_path / "program.py"
    program.write_text(text)
    proc = subprocess.run(
        [sys.executable, str(program), *args],
        # only what the test gives: none of the caller's SUPERFED_* settings
        env={**{k: v for k, v in os.environ.items() if not k.startswith("SUPERFED_")}, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_psij_documentation_example_completes_through_the_broker(broker: Broker, tmp_path: Path) -> None:
    line = run_program(broker, DOC_EXAMPLE, tmp_path, SUPERFED_URL=broker.api,
                       SUPERFED_TOKEN=broker.info["tokens"]["submitter"], SUPERFED_PROJECT="m0001")
    state, exit_code, job_id = line.split()
    assert (state, exit_code) == ("COMPLETED", "0"), line
    with broker.client("viewer") as c:
        job = c.get(f"/api/v1/jobs/{job_id}").json()
    assert job["state"] == "COMPLETED" and job["spec"]["executable"] == "/bin/date" and job["project"] == "m0001"


def test_spec_callbacks_failure_and_cancel(broker: Broker, tmp_path: Path) -> None:
    token = broker.info["tokens"]["submitter"]
    # no SUPERFED_URL: the URL comes from get_instance(url=...)
    out: dict[str, Any] = json.loads(run_program(broker, FULL, tmp_path, broker.api, token, SUPERFED_TOKEN=token))

    failing, long = out["failing"], out["long"]
    assert failing["state"] == "FAILED" and failing["exit_code"] == 3, failing
    with broker.client("viewer") as c:
        recorded = c.get(f"/api/v1/jobs/{failing['id']}").json()["history"]
    # the callback saw every state the broker recorded, in order, each once (the broker's NEW,
    # accepted but not yet at a facility, is PSI/J's QUEUED; an ACTIVE the broker saw is there
    # even when the job ended between two of the executor's polls)
    expected: list[str] = []
    for entry in recorded:
        state = "QUEUED" if entry["state"] in ("NEW", "HELD") else entry["state"]
        if not expected or expected[-1] != state:
            expected.append(state)
    assert failing["seen"] == expected, (failing, recorded)
    assert failing["meta"]["site"] == "nersc" and failing["meta"]["broker_state"] == "FAILED"
    assert long["state"] == "CANCELED" and long["seen"][-1] == "CANCELED", long
    assert {failing["id"], long["id"]} <= set(out["listed"])

    with httpx.Client(base_url=broker.api, headers=broker.headers("viewer"), timeout=30) as c:
        spec = c.get(f"/api/v1/jobs/{failing['id']}").json()["spec"]
        cancelled = c.get(f"/api/v1/jobs/{long['id']}").json()
    # the JobSpec as the broker received it, in PSI/J's own field names
    assert spec["name"] == "psij-exit" and spec["arguments"] == ["-c", "sleep 30; exit $CODE"]
    assert spec["environment"] == {"CODE": "3"} and spec["directory"] == "/tmp"
    assert spec["stdout_path"] == "/tmp/psij-exit.out"
    assert spec["resources"]["node_count"] == 1 and spec["attributes"]["duration"] == 1800
    assert cancelled["native_id"], cancelled  # the cancel reached a facility, not just the broker
