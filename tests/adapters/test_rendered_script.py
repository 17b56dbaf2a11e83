"""Property tests: what the renderers send is exactly what they meant.

For any spec the API accepts (tests/support/strategies.py draws hostile but accepted ones:
quotes, '$(...)', '#SBATCH' in arguments, ';' in environment values ...):

- the sbatch script, read back by a strict little parser (below) and by the SF API
  simulator's sbatch parser, has exactly the directives the spec calls for, the broker's
  account and tag among them, then one ``export`` per variable and exactly one command line,
  which the shell splits back into the executable and its arguments;
- bash itself, running the body, passes exactly those arguments and environment values;
- the FirecREST and IRI JSON bodies carry exactly the fields meant, the account and the tag
  only the broker's.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import firecrest as fc
from adapters import validation as v
from adapters.iri import build_job
from adapters.psij import JobSpec
from adapters.slurm import format_walltime, job_name, render_sbatch
from adapters.tags import tag_from_name
from adapters.types import SubmitRequest
from simulators.sfapi.sbatch import parse_directives
from tests.support.strategies import ACCOUNT, job_specs

TAG = "0a1b2c3d4e5f"
TAGS = st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True)


def parse_sbatch(script: str) -> tuple[dict[str, str | None], list[str]]:
    """A strict reading of a rendered script: the shebang; then only ``#SBATCH --opt[=value]``
    lines, one option each, no blanks or quotes in the value, no option twice; then the body
    (every remaining line).  Anything else is an AssertionError."""
    lines = script.split("\n")
    assert lines[0] == "#!/bin/bash" and lines[-1] == "", script
    options: dict[str, str | None] = {}
    i = 1
    while lines[i].startswith("#"):
        line = lines[i]
        assert line.startswith("#SBATCH --"), line
        words = line.split(" ")
        assert len(words) == 2, line
        name, eq, value = words[1][2:].partition("=")
        assert name not in options, f"--{name} twice"
        assert not any(c in value for c in "'\"#\\$;\t"), line
        options[name] = value if eq else None
        i += 1
    return options, lines[i:-1]


def meant(spec: JobSpec, tag: str, account: str | None) -> dict[str, str | None]:
    """The directives a spec calls for, derived here independently of the renderer."""
    r, a = spec.resources, spec.attributes
    out: dict[str, str | None] = {"nodes": str(spec.nodes), "job-name": job_name(spec, tag)}
    out["comment"] = f"superfed:{tag}"
    optional = {
        "ntasks-per-node": r.processes_per_node,
        "ntasks": r.process_count,
        "cpus-per-task": r.cpu_cores_per_process,
        "gpus-per-task": r.gpu_cores_per_process or None,
        "mem": f"{max(1, r.memory // 2**20)}M" if r.memory else None,
        "time": format_walltime(a.duration) if a.duration else None,
        "reservation": a.reservation_id,
        "account": account,
        "chdir": spec.directory,
        "output": spec.stdout_path,
        "error": spec.stderr_path,
        "export": None if spec.inherit_environment else "NONE",
    }
    out |= {k: str(val) for k, val in optional.items() if val is not None}
    if r.exclusive_node_use:
        out["exclusive"] = None
    if a.queue_name:
        out["qos" if a.custom_attributes.get("queue_is_qos") else "partition"] = a.queue_name
    for key, value in a.custom_attributes.items():
        if key.startswith("slurm."):
            option = key[6:]
            out[option] = None if option in v.SBATCH_FLAGS else value
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(job_specs(), TAGS)
def test_rendered_script_has_exactly_the_meant_directives_and_one_command(spec: JobSpec, tag: str) -> None:
    script = render_sbatch(spec, tag, account=ACCOUNT)
    options, body = parse_sbatch(script)
    assert options == meant(spec, tag, ACCOUNT)
    # the simulator's sbatch parser sees the same options and the same body
    sim = parse_directives(script)
    assert sim.options == {k: (val or "") for k, val in options.items()}
    assert sim.body.rstrip("\n").split("\n") == body
    # the body: one export per variable, then exactly one command, split back as given
    env = sorted(spec.environment.items())
    assert len(body) == len(env) + 1
    for line, (key, value) in zip(body, env, strict=False):
        assert shlex.split(line) == ["export", f"{key}={value}"]
    assert shlex.split(body[-1]) == [spec.executable, *spec.arguments]


ECHO = "import json, os, sys; print(json.dumps([sys.argv[1:], {k: os.environ.get(k) for k in %s}]))"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(job_specs())
def test_bash_runs_the_body_as_one_command_with_the_values_as_given(spec: JobSpec) -> None:
    """The shell's own reading: bash runs the rendered script's body, whose one command (a
    Python that prints its argv and the named variables) sees exactly the spec's values, and
    nothing else ran (no file appears in the working directory)."""
    names = sorted(spec.environment)
    code = ECHO % json.dumps(names)
    probe = msgspec.structs.replace(spec, executable=sys.executable, arguments=["-c", code, *spec.arguments])
    script = render_sbatch(probe, TAG, account=ACCOUNT)
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run(
            ["/bin/bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert list(Path(cwd).iterdir()) == []
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1, out.stdout  # one command ran
    argv, env = json.loads(lines[0])
    assert argv == spec.arguments and env == dict(spec.environment)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(job_specs(), TAGS)
def test_firecrest_body_carries_only_the_brokers_account_and_tag(spec: JobSpec, tag: str) -> None:
    job = fc.build_submit_body(SubmitRequest(tag=tag, spec=spec, system="daint", project=ACCOUNT))["job"]
    expected = {"name", "workingDirectory", "script", "account"}
    a = spec.attributes
    if a.queue_name and not a.custom_attributes.get("queue_is_qos"):
        expected.add("partition")
        assert job["partition"] == a.queue_name
    expected |= {k for k, val in (("reservation", a.reservation_id), ("standardOutput", spec.stdout_path),
                                  ("standardError", spec.stderr_path)) if val}  # fmt: skip
    assert set(job) == expected
    assert job["account"] == ACCOUNT and tag_from_name(job["name"]) == tag
    options, _ = parse_sbatch(job["script"])
    assert options == meant(spec, tag, ACCOUNT)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(job_specs(), TAGS)
def test_iri_body_carries_only_the_brokers_account_and_tag(spec: JobSpec, tag: str) -> None:
    body = build_job(SubmitRequest(tag=tag, spec=spec, system="polaris", project="p", account=ACCOUNT))
    assert body["attributes"]["account"] == ACCOUNT and tag_from_name(body["name"]) == tag
    assert body["executable"] == spec.executable and body["arguments"] == spec.arguments
    assert body.get("environment", {}) == spec.environment
    for key in ("directory", "stdout_path", "stderr_path"):
        assert body.get(key) == getattr(spec, key)
    a = spec.attributes
    custom = {k: val for k, val in a.custom_attributes.items() if k not in v.BROKER_FLAGS}
    assert body["attributes"].get("custom_attributes", {}) == custom
    assert set(body["attributes"]) <= {"account", "duration", "queue_name", "reservation_id", "custom_attributes"}
    for key in ("duration", "queue_name", "reservation_id"):
        assert body["attributes"].get(key) == (getattr(a, key) or None)
