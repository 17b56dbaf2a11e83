"""The IRI Facility API's words and the pure functions that translate them.

Tables first (states, health, file types), then build/parse functions the adapter calls.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import httpx
import msgspec

from adapters import pbs
from adapters import validation as v
from adapters.errors import (
    AdapterError,
    ComponentDown,
    NotFound,
    SiteOverloaded,
    SiteRejected,
)
from adapters.http import parse_retry_after
from adapters.iri.vocab import allocation_unit, resource_kind
from adapters.iri.wire import (
    WireAllocation,
    WireFile,
    WireIncident,
    WireJob,
    WireProblem,
    WireResource,
    WireTask,
)
from adapters.profile import Vocabulary
from adapters.psij import JobSpec
from adapters.tags import name_with_tag, tag_from_name
from adapters.types import (
    Allocation,
    ComponentHealth,
    FileEntry,
    HealthState,
    Incident,
    JobState,
    JobStatus,
    SiteHealth,
    SubmitRequest,
    overall_state,
)

log = logging.getLogger("superfed.adapters.iri")

# -- tables ---------------------------------------------------------------------------------
# IRI JobState (spec: components.schemas.JobState) -> PSI/J state.  IRI took PSI/J's states,
# so this is the identity up to case; PBS's letters stay in native_state.
STATE_MAP: dict[str, JobState] = {
    "new": "NEW",
    "queued": "QUEUED",
    "held": "HELD",
    "active": "ACTIVE",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "canceled": "CANCELED",
}
# IRI resource Status (spec: components.schemas.Status) -> health; anything else is unknown.
HEALTH_MAP: dict[str, HealthState] = {
    "up": "up",
    "degraded": "degraded",
    "down": "down",
    "unknown": "unknown",
}
# IRI TaskStatus values after which a task's result no longer changes.
TASK_FINAL = frozenset({"completed", "failed", "canceled"})
# IRI File.type (reference implementation: `ls` entries) -> FileEntry.type
FILE_TYPES: dict[str, Literal["file", "directory", "link", "other"]] = {
    "file": "file",
    "directory": "directory",
    "symlink": "link",
    "link": "link",
}
# The broker's tag ends the job name (adapters.tags): PBS keeps Job_Name, and the IRI API
# echoes it in the job spec and ALCF in meta_data.Job_Name.
LIST_LIMIT = 1000  # the spec's maximum page size for POST /compute/status
UNAVAILABLE_SLUG = "resource-unavailable"  # the problem type of a resource that is down


def psij_state(iri_state: str | None) -> JobState | None:
    return STATE_MAP.get((iri_state or "").lower())


def health_state(status: str | None) -> HealthState:
    return HEALTH_MAP.get((status or "").lower(), "unknown")


# -- pure build/parse -----------------------------------------------------------------------
def job_name(spec: JobSpec, tag: str) -> str:
    """The spec's name made PBS-safe (printable, no blanks), with the tag as suffix."""
    return name_with_tag(spec.name, tag, max_base=180)


# A portable job in the IRI API's (PBS's) words: the queue is ``queue_name``; required
# attributes such as ALCF's ``filesystems`` travel as custom attributes.
PORTABLE = Vocabulary(queue="queue_name", queue_word="queue")


def build_job(req: SubmitRequest) -> dict[str, Any]:
    """The PSI/J JobSpec body for ``POST /compute/job/{resource}``.  Every field is checked
    first (``validation.ensure_safe``); ``account`` is the broker's (the project's mapping),
    a spec naming another is refused; ``custom_attributes`` (ALCF's ``filesystems``) pass
    through once the broker's own rules allow them."""
    spec = req.spec
    v.ensure_safe(spec)
    v.ensure_matches("tag", req.tag, v.TAG)
    account = v.charged_account(spec, req.charged)
    r, a = spec.resources, spec.attributes
    body: dict[str, Any] = {
        "executable": spec.executable,
        "arguments": list(spec.arguments),
        "name": job_name(spec, req.tag),
        "inherit_environment": spec.inherit_environment,
    }
    for key in ("directory", "stdout_path", "stderr_path"):
        if getattr(spec, key):
            body[key] = getattr(spec, key)
    if spec.environment:
        body["environment"] = dict(spec.environment)
    resources: dict[str, Any] = {"exclusive_node_use": r.exclusive_node_use}
    for key in (
        "node_count",
        "process_count",
        "processes_per_node",
        "cpu_cores_per_process",
        "memory",
    ):
        if getattr(r, key):
            resources[key] = getattr(r, key)
    if r.gpu_cores_per_process:  # the spec wants >= 1; PSI/J's 0 means "none"
        resources["gpu_cores_per_process"] = r.gpu_cores_per_process
    body["resources"] = resources
    attributes: dict[str, Any] = {"account": account} if account else {}
    for key in ("duration", "queue_name", "reservation_id"):
        if getattr(a, key):
            attributes[key] = getattr(a, key)
    if custom := {k: val for k, val in a.custom_attributes.items() if k not in v.BROKER_FLAGS}:
        attributes["custom_attributes"] = custom
    body["attributes"] = attributes
    return body


def parse_status(job: WireJob) -> JobStatus | None:
    """A facility job as the broker sees it, or None for a state outside the spec."""
    st = job.status
    state = psij_state(st.state if st else None)
    if st is None or state is None:
        log.warning("IRI job %s has an unknown state %r", job.id, st.state if st else None)
        return None
    meta = st.meta_data or {}
    name = meta.get("Job_Name") or (job.job_spec or {}).get("name")
    native = meta.get("job_state")
    message = st.message
    # behind PBS (its qstat attributes in meta_data, as at ALCF) an exit of 265 or -29 is not
    # the program's: the job's message says what ended it
    why = pbs.exit_reason(st.exit_code) if "Exit_status" in meta else None
    if why:
        message = f"{message}; {why}" if message else why
    return JobStatus(
        native_id=job.id,
        state=state,
        native_state=str(native) if native else st.state,
        exit_code=st.exit_code,
        message=message,
        tag=tag_from_name(name if isinstance(name, str) else None),
    )


def _worst(states: list[HealthState]) -> HealthState:
    order = {"down": 0, "unknown": 1, "degraded": 2, "up": 3}
    return min(states, key=order.__getitem__, default="unknown")


def parse_health(
    resources: list[WireResource], incidents: list[WireIncident], systems: Sequence[str]
) -> SiteHealth:
    """Our compute systems' resources make the ``compute`` component, storage resources
    ``filesystem``; every other resource is a component of its own name."""
    groups: dict[str, list[WireResource]] = {}
    for res in resources:
        kind = resource_kind(res.resource_type)  # v1 word or v2 URN
        if kind == "compute":
            if res.name in systems:
                groups.setdefault("compute", []).append(res)
        elif kind == "storage":
            groups.setdefault("filesystem", []).append(res)
        else:
            groups.setdefault(res.name or res.id, []).append(res)
    components = [
        ComponentHealth(
            name=name,
            state=_worst([health_state(r.current_status) for r in members]),
            detail=", ".join(f"{r.name}: {r.current_status or 'unknown'}" for r in members),
        )
        for name, members in groups.items()
    ]
    if "compute" not in groups:
        components.append(
            ComponentHealth("compute", "unknown", f"no compute resource named {', '.join(systems)}")
        )
    component_of = {"compute": "compute", "storage": "filesystem"}
    ids = {r.id: component_of.get(resource_kind(r.resource_type), r.name) for r in resources}
    open_incidents = [
        Incident(
            id=i.id,
            summary=i.name or i.description or i.id,
            component=next(
                (ids[u.rsplit("/", 1)[-1]] for u in i.resource_uris if u.rsplit("/", 1)[-1] in ids),
                None,
            ),
            kind=i.type,
            status=i.resolution or i.status,
            start=i.start,
            end=i.end,
        )
        for i in incidents
        if (i.resolution or "unresolved") in ("unresolved", "pending", "extended")
    ]
    return SiteHealth(
        state=overall_state(components), components=components, incidents=open_incidents
    )


def file_entry(f: WireFile) -> FileEntry:
    try:
        size = int(f.size)
    except ValueError:
        size = 0
    kind = FILE_TYPES.get(f.type, "other")
    return FileEntry(
        name=f.name,
        type=kind,
        size=size,
        mtime=f.last_modified,  # type: ignore[arg-type]
        permissions=f.permissions,
    )


def task_error(task: WireTask, path: str, site: str) -> AdapterError:
    result = task.result or {}
    text = str(result.get("output") or result.get("error") or f"task {task.status}")
    if result.get("status_code") == 404 or "No such file or directory" in text:
        return NotFound(f"{path}: {text}", site=site, status=404)
    return SiteRejected(text, site=site, status=result.get("status_code"))


def filesystem_name(path: str) -> str:
    """ALCF filesystem resource of a path: ``/eagle/...`` and ``/lus/eagle/...`` -> eagle."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["lus"] and len(parts) > 1:
        return parts[1]
    return parts[0] if parts else ""




def parse_allocations(project: str, allocations: list[WireAllocation]) -> list[Allocation]:
    """One Allocation per unit the broker knows (node hours, bytes, inodes), summed over the
    project's allocations; every entry in a unit it does not know is its own Allocation with
    unit "unknown" and a note naming the facility's unit, never read as zero node hours."""
    known: dict[str, list[float]] = {}
    out: list[Allocation] = []
    for alloc in allocations:
        for e in alloc.entries:
            unit = allocation_unit(e.unit)
            if unit is None:
                out.append(
                    Allocation(
                        project=project,
                        allocated=e.allocation,
                        used=e.usage,
                        unit="unknown",
                        note=f"allocation {alloc.id}: unit {e.unit!r} is not one superfed reads",
                    )
                )
                continue
            total = known.setdefault(unit, [0.0, 0.0])
            total[0] += e.allocation
            total[1] += e.usage
    ordered = sorted(known.items(), key=lambda kv: (kv[0] != "node_hours", kv[0]))
    return [Allocation(project, a, u, unit) for unit, (a, u) in ordered] + out


def problem_of(resp: httpx.Response) -> WireProblem:
    """The RFC 9457 problem an error answer carries (empty when it carries none)."""
    try:
        return msgspec.json.decode(resp.content, type=WireProblem)
    except msgspec.DecodeError:
        return WireProblem()


def problem_detail(resp: httpx.Response) -> str:
    problem = problem_of(resp)
    return problem.detail or problem.title or f"HTTP {resp.status_code}"


def unavailable_error(resp: httpx.Response, site: str) -> AdapterError:
    """A 503: the resource is down (the problem type says so) or the service is busy."""
    problem = problem_of(resp)
    detail = problem.detail or problem.title or "service unavailable"
    if problem.type.endswith(UNAVAILABLE_SLUG):
        return ComponentDown(detail, site=site, status=resp.status_code)
    return SiteOverloaded(
        f"HTTP {resp.status_code}: {detail}",
        site=site,
        status=resp.status_code,
        retry_after=parse_retry_after(resp.headers.get("retry-after")),
    )
