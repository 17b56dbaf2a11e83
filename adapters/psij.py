"""The PSI/J job specification, as the broker accepts it and every adapter translates it.

Field names are PSI/J's (``psij.JobSpec``, ``ResourceSpecV1``, ``JobAttributes``), which is
also what the IRI Facility API takes on the wire.  Unknown fields are refused so that a typo
in a spec is a 4xx naming the field, not a silently ignored request.  Every string carries
the size limit and pattern of ``adapters/validation.py`` (visible in the OpenAPI schema);
``validation.spec_problems`` adds what a constraint cannot say (custom attributes the broker
owns, the spec's total size) and is what the renderers check again.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from adapters import validation as v

PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]


def _text(max_length: int, pattern: str = v.TEXT, min_length: int = 0) -> msgspec.Meta:
    return msgspec.Meta(
        min_length=min_length, max_length=max_length, pattern=pattern, description=v.DESCRIPTIONS[pattern]
    )


Text = Annotated[str, _text(v.MAX_ARGUMENT)]
Path = Annotated[str, _text(v.MAX_PATH, v.PATH, min_length=1)]
EnvName = Annotated[str, _text(v.MAX_ENV_NAME, v.ENV_NAME, min_length=1)]
EnvValue = Annotated[str, _text(v.MAX_ENV_VALUE)]
CustomKey = Annotated[str, _text(v.MAX_CUSTOM_KEY, v.CUSTOM_KEY, min_length=1)]
CustomValue = Annotated[str, _text(v.MAX_CUSTOM_VALUE)]


class ResourceSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    node_count: PositiveInt | None = None
    process_count: PositiveInt | None = None
    processes_per_node: PositiveInt | None = None
    cpu_cores_per_process: PositiveInt | None = None
    gpu_cores_per_process: NonNegInt | None = None
    exclusive_node_use: bool = True
    # bytes per node, as PSI/J has it
    memory: Annotated[int, msgspec.Meta(ge=1)] | None = None


class JobAttributes(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    # seconds of walltime
    duration: Annotated[int, msgspec.Meta(ge=1, le=31 * 24 * 3600)] | None = None
    queue_name: Annotated[str, _text(v.MAX_QUEUE, v.QUEUE, min_length=1)] | None = None
    account: Annotated[str, _text(v.MAX_ACCOUNT, v.ACCOUNT, min_length=1)] | None = None
    reservation_id: Annotated[str, _text(v.MAX_RESERVATION, v.RESERVATION, min_length=1)] | None = None
    custom_attributes: Annotated[
        dict[CustomKey, CustomValue],
        msgspec.Meta(
            max_length=v.MAX_CUSTOM,
            description="scheduler options a site lets through (e.g. ALCF's filesystems, slurm.<option>); "
            "never the account, the tag, the job name, output paths or the environment",
        ),
    ] = {}


class JobSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    executable: Annotated[str, _text(v.MAX_PATH, min_length=1)]
    name: Annotated[str, _text(v.MAX_NAME)] | None = None
    arguments: Annotated[list[Text], msgspec.Meta(max_length=v.MAX_ARGUMENTS)] = []
    directory: Path | None = None
    environment: Annotated[dict[EnvName, EnvValue], msgspec.Meta(max_length=v.MAX_ENV)] = {}
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    inherit_environment: bool = True
    resources: ResourceSpec = msgspec.field(default_factory=ResourceSpec)
    attributes: JobAttributes = msgspec.field(default_factory=JobAttributes)

    @property
    def nodes(self) -> int:
        """Nodes the job needs, derived the way PSI/J's batch executors do."""
        r = self.resources
        if r.node_count:
            return r.node_count
        if r.process_count and r.processes_per_node:
            return -(-r.process_count // r.processes_per_node)
        return 1
