"""Hypothesis strategies for the values the broker's API accepts."""

from __future__ import annotations

import msgspec
from hypothesis import assume
from hypothesis import strategies as st

from adapters import validation as v
from adapters.psij import JobAttributes, JobSpec, ResourceSpec

ACCOUNT = "m0001"  # the account the translate tests charge (a spec may name only this one)
# printable text: no control characters or line separators (what the API accepts), with the
# shell's and sbatch's special characters over-represented
_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"))
    | st.sampled_from(list("'\"$`;&|<>#()*?![]{}~\\ =%")),
    min_size=1,
    max_size=30,
) | st.sampled_from(["#SBATCH --account=evil", "$(touch x)", "`touch x`", "a; touch x", "' ; touch x '"])
_word = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
_env_name = _word.filter(lambda k: v.matches(v.ENV_NAME, k))  # not '_' alone
# custom attributes a job may pass: a site attribute, or an sbatch option the broker does not own
_custom_key = _word.filter(lambda k: v.custom_attribute_problem(k, "x") is None) | st.sampled_from(
    ["slurm.constraint", "slurm.licenses", "slurm.mail-type", "slurm.signal", "slurm.requeue", "filesystems"]
)
_directive_value = st.from_regex(r"[A-Za-z0-9_.,:=+/@%*&|()!-]{1,20}", fullmatch=True)
_path = st.from_regex(r"/[A-Za-z0-9_./-]{1,40}", fullmatch=True)
_small = st.integers(min_value=1, max_value=64)


@st.composite
def resources(draw: st.DrawFn) -> ResourceSpec:
    return ResourceSpec(
        node_count=draw(st.none() | _small),
        process_count=draw(st.none() | st.integers(1, 4096)),
        processes_per_node=draw(st.none() | _small),
        cpu_cores_per_process=draw(st.none() | _small),
        gpu_cores_per_process=draw(st.none() | st.integers(0, 8)),
        exclusive_node_use=draw(st.booleans()),
        memory=draw(st.none() | st.integers(1, 2**40)),
    )


@st.composite
def attributes(draw: st.DrawFn) -> JobAttributes:
    return JobAttributes(
        duration=draw(st.none() | st.integers(1, 86400)),
        queue_name=draw(st.none() | _word),
        account=draw(st.none() | st.just(ACCOUNT)),
        reservation_id=draw(st.none() | _word),
        custom_attributes=draw(st.dictionaries(_custom_key, _directive_value | _text, max_size=3)),
    )


@st.composite
def job_specs(draw: st.DrawFn) -> JobSpec:
    spec = JobSpec(
        executable=draw(st.sampled_from(["/bin/bash", "/usr/bin/env", "python3", "./a.out"])),
        name=draw(st.none() | _text),
        arguments=draw(st.lists(_text, max_size=5)),
        directory=draw(st.none() | _path),
        environment=draw(st.dictionaries(_env_name, _text, max_size=4)),
        stdout_path=draw(st.none() | _path),
        stderr_path=draw(st.none() | _path),
        inherit_environment=draw(st.booleans()),
        resources=draw(resources()),
        attributes=draw(attributes()),
    )
    # every spec the API would accept survives its own JSON round trip (msgspec's constraints)
    spec = msgspec.json.decode(msgspec.json.encode(spec), type=JobSpec)
    # ... and the broker's own rules (a custom attribute's value must suit its option)
    assume(not list(v.spec_problems(spec)))
    return spec
