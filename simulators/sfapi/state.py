"""The SF API simulator's facility: the common Facility plus what only NERSC has
(tasks, outage and note history, the seeded home and scratch directories)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from simulators.common.facility import Facility, SimSettings
from simulators.common.scheduler import Partition, SimJob
from simulators.sfapi.commands import run_batch_job, stepd_note
from simulators.sfapi.policy import perlmutter_qos

PUBLIC_HOSTS = ("dtn01", "dtns", "perlmutter")  # sfapi_client's ``Machine`` enum
MAX_TASKS = 200_000  # oldest task records are dropped (the real ones vanish too)

# Resources /status lists, by the Facility component that drives them.
FILESYSTEMS = ("global_homes", "global_common", "community_filesystem", "dna", "dtns")
LOGIN_SERVICES = ("ssh-proxy",)
OTHER_SERVICES = ("iris", "globus", "jupyter", "nersc_center", "website", "spin", "ldap")
STORAGE = ("archive", "regent")
FULL_NAMES = {
    "perlmutter": "Perlmutter",
    "dtns": "Data Transfer Nodes",
    "dtn01": "Data Transfer Node 01",
    "global_homes": "Global Homes",
    "global_common": "Global Common",
    "community_filesystem": "Community File System",
    "dna": "Data n' Archive",
    "ssh-proxy": "SSH Proxy",
    "iris": "Iris",
    "globus": "Globus",
    "jupyter": "Jupyter",
    "nersc_center": "NERSC Center",
    "website": "Website",
    "spin": "Spin",
    "ldap": "LDAP",
    "archive": "HPSS Archive",
    "regent": "HPSS Regent",
}


@dataclass
class Task:
    id: str
    status: str  # new | completed | failed | cancelled
    result: str | None  # a JSON document serialised as a string
    done_at: float = 0.0  # a ``new`` task completes at this time
    final_result: str | None = None

    def view(self, now: float) -> dict[str, Any]:
        if self.status == "new" and now >= self.done_at:
            self.status, self.result = "completed", self.final_result
        return {"id": self.id, "status": self.status, "result": self.result}


@dataclass
class OutageRecord:
    name: str
    start: float
    end: float | None
    description: str
    notes: str
    swo: str  # "out" for an outage, "degr" for degraded service
    status: str = "Active"  # Active | Completed | Planned | ...
    planned_end: float = 0.0


@dataclass
class Transfer:
    id: str
    created: float
    bytes: int = field(default=0)


def default_qos(nodes: int) -> list[Partition]:
    """Perlmutter's QOS (the simulator's partitions): regular first (the default), and
    debug, NERSC's short interactive-turnaround QOS (at most 8 nodes, 30 minutes)."""
    return [
        Partition("regular", max_nodes=nodes, max_walltime_s=48 * 3600, default_walltime_s=3600),
        Partition("debug", max_nodes=min(8, nodes), max_walltime_s=30 * 60, default_walltime_s=30 * 60),
    ]


class SfapiFacility(Facility):
    def __init__(self, settings: SimSettings):
        if not settings.partitions:
            # with the facility's rules on: Perlmutter's whole QOS set, debug (NERSC's default)
            # first; off (protocol tests): regular first, then debug
            qos = perlmutter_qos if settings.enforce_policy else default_qos
            settings = dataclasses.replace(settings, partitions=qos(settings.nodes))
        self.tasks: dict[str, Task] = {}
        self._task_ids = itertools.count(1)
        self.outages: dict[str, list[OutageRecord]] = {}
        self.transfers: dict[str, Transfer] = {}
        super().__init__("sfapi", settings)

    # -- lifecycle ------------------------------------------------------------------------
    def reset(self) -> None:
        super().reset()
        self.tasks = {}
        self.outages = {}
        self.transfers = {}
        self._seed_files()
        for sysm in self.systems.values():
            # the script runs when the job ends (lazily); Slurm notes a kill in the error file
            sysm.runner = lambda job, budget: run_batch_job(self, job, budget)
            sysm.on_finish = self._stepd_note

    def _stepd_note(self, job: SimJob) -> None:
        stepd_note(self, job)

    @property
    def home(self) -> str:
        u = self.settings.user
        return f"/global/homes/{u[0]}/{u}"

    @property
    def scratch(self) -> str:
        u = self.settings.user
        return f"/pscratch/sd/{u[0]}/{u}"

    def _seed_files(self) -> None:
        fs = self.fs
        fs.group = self.settings.user  # NERSC users own a group of their own name
        fs.mkdir(self.home, parents=True)
        fs.mkdir(self.scratch, parents=True)
        for project in self.settings.projects:
            fs.mkdir(f"/global/cfs/cdirs/{project}", parents=True)
        fs.write(f"{self.home}/.bashrc", b"# NERSC default .bashrc\nexport PS1='\\u@\\h:\\w$ '\n")
        fs.write(
            f"{self.home}/hello.sh",
            b"#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --constraint=cpu\n#SBATCH --time=00:05:00\necho hello\n",
        )

    @property
    def default_account(self) -> str | None:
        return next(iter(self.settings.projects), None)

    # -- outages --------------------------------------------------------------------------
    def set_component(self, name: str, state: str, note: str = "") -> None:
        before = self.component(name)
        super().set_component(name, state, note)
        if before == state:
            return
        now = self.clock()
        for resource in self.resources_of(name):
            history = self.outages.setdefault(resource, [])
            for rec in history:
                if rec.status == "Active":
                    rec.status, rec.end = "Completed", now
            if state != "up":
                down = state == "down"
                history.append(
                    OutageRecord(
                        name=resource,
                        start=now,
                        end=None,
                        description="Unscheduled Outage" if down else "System Degraded",
                        notes=note
                        or (
                            f"{FULL_NAMES.get(resource, resource)} is unavailable"
                            if down
                            else f"{FULL_NAMES.get(resource, resource)} is degraded"
                        ),
                        swo="out" if down else "degr",
                        planned_end=now + 4 * 3600,
                    )
                )

    def resources_of(self, component: str) -> tuple[str, ...]:
        """The /status resources a Facility component stands for."""
        if component in ("compute", "scheduler"):
            return tuple(self.systems)
        if component == "filesystem":
            return FILESYSTEMS
        if component == "login":
            return LOGIN_SERVICES
        return (component,)

    def resource_state(self, resource: str) -> str:
        """up | degraded | down for one /status resource (the worst component behind it)."""
        if resource in self.systems:
            states = {self.component("compute"), self.component("scheduler")}
        elif resource in FILESYSTEMS:
            states = {self.component("filesystem")}
        elif resource in LOGIN_SERVICES:
            states = {self.component("login")}
        else:
            states = {self.components.get(resource, "up")}
        for s in ("down", "degraded"):
            if s in states:
                return s
        return "up"

    def all_resources(self) -> list[tuple[str, str]]:
        """(name, system_type) of every resource /status lists."""
        out = [(name, "compute") for name in self.systems]
        out += [(n, "filesystem") for n in FILESYSTEMS]
        out += [(n, "service") for n in (*LOGIN_SERVICES, *OTHER_SERVICES)]
        out += [(n, "storage") for n in STORAGE]
        known = {n for n, _ in out}
        out += [
            (n, "service")
            for n in self.components
            if n not in known and n not in ("compute", "scheduler", "filesystem", "login")
        ]
        return out

    # -- tasks ----------------------------------------------------------------------------
    def add_task(self, result: dict[str, Any], *, delay: float = 0.0) -> Task:
        tid = str(next(self._task_ids))
        body = json.dumps(result)
        if delay > 0:
            task = Task(tid, "new", None, done_at=self.clock() + delay, final_result=body)
        else:
            task = Task(tid, "completed", body)
        self.tasks[tid] = task
        if len(self.tasks) > MAX_TASKS:
            del self.tasks[next(iter(self.tasks))]
        return task

    def new_transfer(self) -> Transfer:
        t = Transfer(str(uuid.uuid4()), self.clock(), bytes=1 << 20)
        self.transfers[t.id] = t
        return t
