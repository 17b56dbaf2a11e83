"""The simulated ALCF's state beyond the common facility: resources, incidents and events
that follow component outages, and the filesystem tasks."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from simulators.common import jobrun
from simulators.common.facility import Facility, SimSettings
from simulators.common.scheduler import SimJob
from simulators.iri import catalog, pbs, running

# which facility component drives which kind of resource
COMPUTE_COMPONENTS = ("compute", "scheduler")
FILESYSTEM_COMPONENTS = ("filesystem",)
_ORDER = {"down": 0, "degraded": 1, "up": 2}


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


@dataclass
class Resource:
    id: str
    name: str
    kind: str  # "compute" | "filesystem"
    last_modified: float


@dataclass
class Incident:
    id: str
    name: str
    description: str
    component: str
    status: str
    start: float
    resource_ids: list[str]
    last_modified: float
    end: float | None = None
    resolution: str = "unresolved"
    event_ids: list[str] = field(default_factory=list)


@dataclass
class Event:
    id: str
    name: str
    description: str
    status: str
    occurred_at: float
    resource_id: str
    incident_id: str | None


@dataclass
class Task:
    id: str
    user: str
    router: str
    command: str
    args: dict[str, Any]
    ok: bool
    result: dict[str, Any]
    ready_at: float


@dataclass
class Quirks:
    """Ways real IRI servers differ from the spec or from each other, switched on through
    ``POST /_sim/iri`` (all off after a reset)."""

    ignore_job_filter: bool = False  # POST /compute/status lists every job, whatever the filter
    page_cap: int | None = None  # listings silently cap `limit` at this
    hold_submissions: bool = False  # keyed v2 submissions wait until released (409 in flight)
    allocation_unit: str | None = None  # reported instead of node hours (a facility's own unit)
    no_idempotency_store: bool = False  # a key gets 501, as the reference server without a store


@dataclass
class Replay:
    """One Idempotency-Key's record (the reference server's idempotency store)."""

    body_hash: str
    done: bool = False
    body: bytes = b""


class IriFacility(Facility):
    """A Facility whose outages become IRI incidents and events as they happen."""

    MAX_TASKS = 10_000

    def __init__(self, settings: SimSettings, versions: tuple[str, ...] = ("v1", "v2"), **kw: Any):
        self.versions = versions  # the API versions served (/api/v1, /api/v2)
        super().__init__("iri", settings, **kw)

    def reset(self) -> None:
        super().reset()
        now = self.clock()
        self.resources: dict[str, Resource] = {}
        for name in self.settings.systems:
            rid = catalog.resource_id(name)
            self.resources[rid] = Resource(rid, name, "compute", now)
        for name in catalog.FILESYSTEMS:
            rid = catalog.resource_id(name)
            self.resources[rid] = Resource(rid, name, "filesystem", now)
        self.by_name = {r.name: r for r in self.resources.values()}
        self.incidents: dict[str, Incident] = {}
        self.events: dict[str, Event] = {}
        self.open_incidents: dict[str, Incident] = {}  # component -> its unresolved incident
        self.tasks: dict[str, Task] = {}
        self.quirks = Quirks()
        self.replays: dict[tuple[str, str, str], Replay] = {}  # (user, endpoint, key)
        self.held = asyncio.Event()  # set: held submissions go on
        self.held.set()
        self.last_modified = now
        self._seed_files()
        for sysm in self.systems.values():
            sysm.runner = self._run_job  # the job's command runs (lazily) when it ends

    def _run_job(self, job: SimJob, budget: float | None) -> int | None:
        spec = running.job_run(
            self.fs,
            job,
            home=f"/home/{job.user}",
            uid=self.settings.uid,
            jobid=pbs.job_id(job),
            server=job.system,
        )
        return jobrun.run(self.fs, spec, budget)[0]

    def _seed_files(self) -> None:
        user = self.settings.user
        self.fs.mkdir(f"/home/{user}", parents=True)
        for project in self.settings.projects:
            self.fs.mkdir(f"/eagle/{project}", parents=True)

    # -- health ---------------------------------------------------------------------------
    def components_of(self, kind: str) -> tuple[str, ...]:
        return COMPUTE_COMPONENTS if kind == "compute" else FILESYSTEM_COMPONENTS

    def resource_status(self, res: Resource) -> str:
        return min(
            (self.component(c) for c in self.components_of(res.kind)), key=_ORDER.__getitem__
        )

    def set_component(self, name: str, state: str, note: str = "") -> None:
        before = {rid: self.resource_status(r) for rid, r in self.resources.items()}
        super().set_component(name, state, note)
        now = self.clock()
        changed = [r for rid, r in self.resources.items() if self.resource_status(r) != before[rid]]
        if changed:
            self._record(name, state, note, changed, now)

    def _record(
        self, component: str, state: str, note: str, changed: list[Resource], now: float
    ) -> None:
        """An outage opens an unplanned incident; a change while open adds events; the
        return to ``up`` resolves it."""
        incident = self.open_incidents.get(component)
        names = ", ".join(r.name for r in changed)
        if incident is None and state != "up":
            incident = Incident(
                id=str(uuid.uuid4()),
                name=f"{names} {state}",
                description=note or f"Unplanned outage: {component} is {state}",
                component=component,
                status=state,
                start=now,
                resource_ids=[r.id for r in changed],
                last_modified=now,
            )
            self.incidents[incident.id] = incident
            self.open_incidents[component] = incident
        elif incident is not None:
            incident.status = state
            incident.last_modified = now
            if state == "up":
                incident.end = now
                incident.resolution = "completed"
                del self.open_incidents[component]
        for res in changed:
            res.last_modified = now
            status = self.resource_status(res)
            ev = Event(
                id=str(uuid.uuid4()),
                name=f"{res.name} is {status}",
                description=note or f"{component} is {state}",
                status=status,
                occurred_at=now,
                resource_id=res.id,
                incident_id=incident.id if incident else None,
            )
            self.events[ev.id] = ev
            if incident is not None:
                incident.event_ids.append(ev.id)

    # -- tasks ----------------------------------------------------------------------------
    def add_task(self, task: Task) -> None:
        if len(self.tasks) >= self.MAX_TASKS:
            del self.tasks[next(iter(self.tasks))]
        self.tasks[task.id] = task
