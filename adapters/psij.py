"""The PSI/J job specification, as the broker accepts it and every adapter translates it.

Field names are PSI/J's (``psij.JobSpec``, ``ResourceSpecV1``, ``JobAttributes``), which is
also what the IRI Facility API takes on the wire.  Unknown fields are refused so that a typo
in a spec is a 4xx naming the field, not a silently ignored request.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]


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
    queue_name: str | None = None
    account: str | None = None
    reservation_id: str | None = None
    custom_attributes: dict[str, str] = {}


class JobSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    executable: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    arguments: list[str] = []
    directory: str | None = None
    environment: dict[str, str] = {}
    stdout_path: str | None = None
    stderr_path: str | None = None
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
