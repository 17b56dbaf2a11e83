"""The SF API's words and shapes, and the pure functions that translate them.

Tables first (``HEALTH_MAP``, ``ERROR_RULES``, ``COMPONENT_OF``), then the wire Structs
(lenient: unknown fields are ignored so NERSC's additions do not break us), then the
build/parse functions the adapter class calls.  Source: shared/specs/nersc-sfapi/PROTOCOL.md.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import msgspec

from adapters.errors import (
    AdapterError,
    ComponentDown,
    NotFound,
    SiteOverloaded,
    SiteRejected,
    SiteUnavailable,
)
from adapters.profile import Vocabulary
from adapters.slurm import parse_exit_code, psij_state, tag_from_comment
from adapters.types import (
    FINAL_STATES,
    ComponentHealth,
    FileEntry,
    HealthState,
    Incident,
    JobStatus,
)

log = logging.getLogger("superfed.adapters.sfapi")

# A portable job in Perlmutter's words: the queue is a QOS (``--qos``), the node type a
# constraint (``-C cpu|gpu``, which NERSC's sbatch requires).
PORTABLE = Vocabulary(
    queue="queue_name", queue_word="qos", constraint="slurm.constraint", flags={"queue_is_qos": "1"}
)

# SF API StatusValue (PROTOCOL.md §4.1) -> broker health.
HEALTH_MAP: dict[str, HealthState] = {
    "active": "up",  # fully functional
    "degraded": "degraded",  # functional, possibly degraded performance
    "unavailable": "down",  # down, e.g. during maintenance
    "other": "unknown",  # undefined (rare)
}

# /status system_type (and a few named services) -> the broker's component names.
COMPONENT_OF_TYPE: dict[str, str] = {
    "compute": "compute",
    "filesystem": "filesystem",
    "storage": "storage",
}
LOGIN_RESOURCES = frozenset({"ssh-proxy"})

# In-band error text (sbatch, scancel, ls, ssh...) -> taxonomy.  First match wins; anything
# else the facility refused is permanent (SiteRejected with its own words).
ERROR_RULES: tuple[tuple[str, type[AdapterError]], ...] = (
    ("Unable to contact slurm controller", ComponentDown),  # slurmctld down / maintenance
    ("Slurm temporarily unable to accept job", SiteOverloaded),  # controller busy
    ("Socket timed out", SiteUnavailable),  # controller slow to answer
    ("Connection timed out", ComponentDown),  # login node unreachable
    ("Connection refused", ComponentDown),
    ("Input/output error", ComponentDown),  # file system down
    ("No such file or directory", NotFound),
    ("Invalid job id specified", NotFound),
)
ALREADY_FINAL = "already completing or completed"  # scancel on a finished job: not an error


def classify(message: str, site: str | None = None) -> AdapterError:
    """The taxonomy error for an in-band error message; its text stays the facility's own."""
    for needle, cls in ERROR_RULES:
        if needle in message:
            return cls(message, site=site)
    return SiteRejected(message, site=site)


def health_of(word: str | None) -> HealthState:
    state = HEALTH_MAP.get((word or "").strip().lower())
    if state is None:
        log.warning("SF API status word %r is not documented; reporting unknown", word)
        return "unknown"
    return state


# -- wire shapes ----------------------------------------------------------------------------
class TokenWire(msgspec.Struct):
    access_token: Annotated[str, msgspec.Meta(min_length=1)]
    expires_in: float | None = None


class StatusWire(msgspec.Struct):
    name: str
    status: str
    description: str | None = None
    system_type: str | None = None
    notes: list[str] | None = None
    updated_at: str | None = None


class OutageWire(msgspec.Struct):
    name: str
    start_at: str | None = None
    end_at: str | None = None
    description: str | None = None
    notes: str | None = None
    status: str | None = None
    swo: str | None = None


class TaskAccepted(msgspec.Struct):
    task_id: str
    status: str
    error: str | None = None


class TaskWire(msgspec.Struct):
    id: str
    status: str | None = None
    result: str | None = None


class JobRow(msgspec.Struct):
    """The sacct/squeue columns we read (of 107/49): decoding skips the rest cheaply."""

    jobid: str = ""
    state: str = ""
    exitcode: str | None = None
    reason: str | None = None
    comment: str | None = None
    jobname: str | None = None  # sacct
    name: str | None = None  # squeue


class JobsWire(msgspec.Struct):
    status: str
    output: list[JobRow]
    error: str | None = None


class DirEntryWire(msgspec.Struct):
    perms: str | None = None
    size: float | None = 0
    date: str | None = None
    name: str | None = None


class DirectoryWire(msgspec.Struct):
    status: str
    entries: list[DirEntryWire]
    error: str | None = None


class DownloadWire(msgspec.Struct):
    status: str
    file: str | None = None
    is_binary: bool | None = False
    error: str | None = None


class UploadWire(msgspec.Struct):
    status: str
    output: str | None = None
    error: str | None = None


class ProjectWire(msgspec.Struct):
    repo_name: str
    hours_given: float | None = None
    hours_used: float | None = None


class UserWire(msgspec.Struct):
    name: str
    uid: int | None = None


# -- health -------------------------------------------------------------------------------
_ORDER = {"down": 0, "unknown": 1, "degraded": 2, "up": 3}


def _worst(states: list[HealthState]) -> HealthState:
    return min(states, key=_ORDER.__getitem__) if states else "unknown"


def components_of(resources: list[StatusWire], systems: list[str]) -> list[ComponentHealth]:
    """``compute`` (the first system; others as ``compute:<name>``), then ``filesystem``,
    ``storage`` and ``login``, each the worst of the resources behind it."""
    by_name = {r.name: r for r in resources}
    out: list[ComponentHealth] = []
    for i, system in enumerate(systems):
        name = "compute" if i == 0 else f"compute:{system}"
        r = by_name.get(system)
        if r is None:
            out.append(ComponentHealth(name, "unknown", f"{system} is not listed by /status"))
        else:
            out.append(ComponentHealth(name, health_of(r.status), _detail(r)))
    groups: dict[str, list[StatusWire]] = {}
    for r in resources:
        if r.name in systems:
            continue
        comp = "login" if r.name in LOGIN_RESOURCES else COMPONENT_OF_TYPE.get(r.system_type or "")
        if comp and comp != "compute":
            groups.setdefault(comp, []).append(r)
    for comp in ("filesystem", "storage", "login"):
        members = groups.get(comp)
        if not members:
            continue
        states = [health_of(r.status) for r in members]
        bad = [f"{r.name}: {_detail(r)}" for r, s in zip(members, states, strict=True) if s != "up"]
        out.append(ComponentHealth(comp, _worst(states), "; ".join(bad)))
    return out


def _detail(r: StatusWire) -> str:
    parts = [r.description or r.status, *(r.notes or [])]
    return " - ".join(p for p in parts if p)


def incidents_of(
    outages: list[OutageWire], planned: list[OutageWire], systems: list[str], kinds: dict[str, str]
) -> list[Incident]:
    """Active (or extended) outages, and planned ones, of the resources we report on."""
    out: list[Incident] = []
    for o, is_planned in [*((o, False) for o in outages), *((o, True) for o in planned)]:
        status = (o.status or "").lower()
        if (is_planned and status not in ("planned", "")) or (
            not is_planned and status not in ("active", "extended")
        ):
            continue
        component = kinds.get(o.name)
        if component is None:
            continue
        out.append(
            Incident(
                id=f"{o.name}:{o.start_at or ''}",
                summary=" - ".join(
                    p for p in (f"{o.name}: {o.description or 'outage'}", o.notes) if p
                ),
                component=component,
                kind="planned" if is_planned else "unplanned",
                status="planned" if is_planned else "active",
                start=o.start_at,
                end=o.end_at,
            )
        )
    return out


def component_names(resources: list[StatusWire], systems: list[str]) -> dict[str, str]:
    """resource name -> the component it is reported under."""
    out: dict[str, str] = {}
    for r in resources:
        if r.name in systems:
            out[r.name] = "compute" if r.name == systems[0] else f"compute:{r.name}"
        elif r.name in LOGIN_RESOURCES:
            out[r.name] = "login"
        elif (comp := COMPONENT_OF_TYPE.get(r.system_type or "")) and comp != "compute":
            out[r.name] = comp
    return out


# -- tasks and jobs ---------------------------------------------------------------------------
def task_result(raw: str | None) -> dict[str, Any]:
    """A task's ``result``: JSON serialised into a string, sometimes with a prefix before
    the first ``{`` (NERSC's own training code strips it).  Not JSON -> ``{}``."""
    if not raw:
        return {}
    text = raw[raw.find("{") :] if "{" in raw else raw
    try:
        value = json.loads(text)
    except ValueError:
        return {"status": "ok" if raw.strip() == "ok" else "error", "error": raw}
    return value if isinstance(value, dict) else {}


def job_status(row: JobRow, wanted: set[str] | None = None) -> JobStatus | None:
    """One sacct row as a JobStatus; None for job steps (``123.batch``), ids not asked for,
    and Slurm words we do not know (logged, never fatal)."""
    jobid = row.jobid
    if not jobid or "." in jobid or (wanted is not None and jobid not in wanted):
        return None
    state = psij_state(row.state)
    if state is None:
        log.warning("job %s: Slurm state %r is not in STATE_MAP; skipped", jobid, row.state)
        return None
    exit_code = parse_exit_code(row.exitcode) if state in FINAL_STATES else None
    message = None if row.reason in (None, "", "None") else row.reason
    return JobStatus(jobid, state, row.state, exit_code, message, tag_from_comment(row.comment))


def tag_matches(row: JobRow, tag: str) -> bool:
    """The job carries the broker's tag in its comment (or, failing that, as its name)."""
    return tag_from_comment(row.comment) == tag or tag in (row.jobname, row.name)


# -- files --------------------------------------------------------------------------------
_TYPES = {"d": "directory", "-": "file", "l": "link"}


def file_entries(entries: list[DirEntryWire]) -> list[FileEntry]:
    """``ls`` entries without ``.``/``..``; a single file's full path becomes its name."""
    out: list[FileEntry] = []
    for e in entries:
        name = e.name or ""
        if name in (".", ".."):
            continue
        perms = e.perms or "?"
        if perms.startswith("l") and " -> " in name:
            name = name.split(" -> ", 1)[0]
        name = name.rstrip("/").rsplit("/", 1)[-1] if "/" in name else name
        out.append(
            FileEntry(
                name=name,
                type=_TYPES.get(perms[0], "other"),  # type: ignore[arg-type]
                size=int(e.size or 0),
                mtime=e.date,
                permissions=perms[1:] or None,
            )
        )
    return out
