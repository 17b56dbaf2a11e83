"""Hypothesis strategies for the values the broker's API accepts."""

from __future__ import annotations

import msgspec
from hypothesis import strategies as st

from adapters.psij import JobAttributes, JobSpec, ResourceSpec

_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30
)
_word = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
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
        account=draw(st.none() | _word),
        reservation_id=draw(st.none() | _word),
        custom_attributes=draw(st.dictionaries(_word, _text, max_size=3)),
    )


@st.composite
def job_specs(draw: st.DrawFn) -> JobSpec:
    spec = JobSpec(
        executable=draw(st.sampled_from(["/bin/bash", "/usr/bin/env", "python3", "./a.out"])),
        name=draw(st.none() | _text),
        arguments=draw(st.lists(_text, max_size=5)),
        directory=draw(st.none() | _path),
        environment=draw(st.dictionaries(_word, _text, max_size=4)),
        stdout_path=draw(st.none() | _path),
        stderr_path=draw(st.none() | _path),
        inherit_environment=draw(st.booleans()),
        resources=draw(resources()),
        attributes=draw(attributes()),
    )
    # every spec the API would accept survives its own JSON round trip
    return msgspec.json.decode(msgspec.json.encode(spec), type=JobSpec)
