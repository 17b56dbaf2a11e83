"""Wire-neutral values that cross the adapter boundary.

The broker speaks only these; each adapter turns them into its facility's words and back.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from adapters.psij import JobSpec

HealthState = Literal["up", "degraded", "down", "unknown"]
# PSI/J / IRI job states, upper-case as the broker's API shows them.
JobState = Literal["NEW", "QUEUED", "HELD", "ACTIVE", "COMPLETED", "FAILED", "CANCELED"]
FINAL_STATES: frozenset[str] = frozenset({"COMPLETED", "FAILED", "CANCELED"})


class SubmitRequest(msgspec.Struct, frozen=True):
    """One job for one facility. ``tag`` is the broker's job id; the adapter puts it where
    ``find_by_tag`` can find it again (job name and/or comment)."""

    tag: str
    spec: JobSpec
    system: str
    project: str
    # the facility account charged: the site's mapping of ``project`` (the broker decides;
    # None = the project's own name).  A spec naming another account is refused, not used.
    account: str | None = None
    # the broker's submission generation for this job: every retry of one submission keeps
    # it, so protocols with idempotency keys (IRI v2) replay instead of making a second job
    attempt: int = 0

    @property
    def charged(self) -> str | None:
        return self.account or self.project or None


class SubmitReceipt(msgspec.Struct, frozen=True):
    native_id: str
    system: str


class JobStatus(msgspec.Struct, frozen=True):
    native_id: str
    state: JobState
    native_state: str  # the facility's own word, e.g. "CANCELLED by 1234", "F", "RUNNING"
    exit_code: int | None = None
    message: str | None = None
    tag: str | None = None


class ComponentHealth(msgspec.Struct, frozen=True):
    name: str  # compute, filesystem, login, scheduler, ...
    state: HealthState
    detail: str = ""


class Incident(msgspec.Struct, frozen=True):
    id: str
    summary: str
    component: str | None = None
    kind: str | None = None  # planned, unplanned, reservation
    status: str | None = None  # active, planned, resolved, ...
    start: str | None = None  # ISO 8601
    end: str | None = None


class SiteHealth(msgspec.Struct, frozen=True):
    state: HealthState  # overall: the compute component's state, the one placement needs
    components: list[ComponentHealth]
    incidents: list[Incident] = []


class FileEntry(msgspec.Struct, frozen=True):
    name: str
    type: Literal["file", "directory", "link", "other"]
    size: int
    mtime: str | None = None  # ISO 8601
    permissions: str | None = None  # e.g. "rwxr-xr-x"


class Allocation(msgspec.Struct, frozen=True):
    project: str
    allocated: float
    used: float
    unit: str = "node_hours"  # node_hours, bytes, inodes; "unknown" when the facility's is not ours
    note: str | None = None  # why the unit is unknown (the facility's own unit), or other caveats


def overall_state(components: list[ComponentHealth], primary: str = "compute") -> HealthState:
    """A site's headline state is its compute component's; without one, the worst of all."""
    for c in components:
        if c.name == primary:
            return c.state
    order = {"down": 0, "unknown": 1, "degraded": 2, "up": 3}
    return min((c.state for c in components), key=order.__getitem__, default="unknown")
