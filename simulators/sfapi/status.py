"""``/status`` and ``/meta`` (public, no token): resources, notes, outages, changelog, config.

Each resource's status follows the Facility component behind it (``SfapiFacility.resource_state``):
``up`` -> ``active``, ``degraded`` -> ``degraded``, ``down`` -> ``unavailable`` with an
``Active`` outage and a note.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Request, Response, get

from simulators.sfapi.rows import PACIFIC, pacific_iso
from simulators.sfapi.state import FULL_NAMES, OutageRecord, SfapiFacility
from simulators.sfapi.wire import BASE, ApiError, fac, ok

# Facility component state -> (SF API StatusValue, description)
STATUS_OF = {
    "up": ("active", "System is active"),
    "degraded": ("degraded", "System Degraded"),
    "down": ("unavailable", "System Unavailable"),
}
PLANNED_IN_S = 14 * 86400  # the simulated next maintenance, two weeks after start
PLANNED_LENGTH_S = 12 * 3600


def _short(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), PACIFIC).strftime("%Y-%m-%d %H:%M")


def _note_line(rec: OutageRecord) -> str:
    return f"{_short(rec.start)} -- {_short(rec.planned_end)} PDT, {rec.description}, {rec.notes}"


def status_of(f: SfapiFacility, name: str, system_type: str) -> dict[str, Any]:
    value, description = STATUS_OF[f.resource_state(name)]
    history = f.outages.get(name, [])
    active = [r for r in history if r.status == "Active"]
    updated = max([f.started_at, *(r.start for r in history), *(r.end or 0 for r in history)])
    return {
        "name": name,
        "full_name": FULL_NAMES.get(name, name),
        "description": description,
        "system_type": system_type,
        "notes": [_note_line(r) for r in active],
        "status": value,
        "updated_at": pacific_iso(updated),
    }


def _outage(rec: OutageRecord) -> dict[str, Any]:
    return {
        "name": rec.name,
        "start_at": pacific_iso(rec.start),
        "end_at": pacific_iso(rec.end if rec.end is not None else rec.planned_end),
        "description": rec.description,
        "notes": rec.notes,
        "status": rec.status,
        "swo": rec.swo,
        "update_at": pacific_iso(rec.end if rec.end is not None else rec.start),
    }


def _planned(f: SfapiFacility, name: str) -> list[dict[str, Any]]:
    if name not in f.systems:
        return []
    start = f.started_at + PLANNED_IN_S
    rec = OutageRecord(
        name,
        start,
        start + PLANNED_LENGTH_S,
        "Scheduled Maintenance",
        f"{FULL_NAMES.get(name, name)} will be unavailable for scheduled maintenance",
        "out",
        status="Planned",
    )
    return [_outage(rec)]


def _note(rec: OutageRecord) -> dict[str, Any]:
    return {
        "name": rec.name,
        "notes": _note_line(rec),
        "active": rec.status == "Active",
        "timestamp": pacific_iso(rec.start),
    }


def _resource_type(f: SfapiFacility, name: str) -> str:
    for n, kind in f.all_resources():
        if n == name:
            return kind
    raise ApiError(404, f"Resource {name} not found")


@get([f"{BASE}/status", f"{BASE}/status/"])
async def all_status(request: Request[Any, Any, Any]) -> Response[bytes]:
    f = fac(request)
    return ok([status_of(f, n, t) for n, t in f.all_resources()])


@get(f"{BASE}/status/{{name:str}}")
async def one_status(request: Request[Any, Any, Any]) -> Response[bytes]:
    name = request.path_params["name"]
    f = fac(request)
    return ok(status_of(f, name, _resource_type(f, name)))


@get(f"{BASE}/status/notes")
async def all_notes(request: Request[Any, Any, Any]) -> Response[bytes]:
    f = fac(request)
    return ok([[_note(r) for r in f.outages.get(n, [])] for n, _ in f.all_resources()])


@get(f"{BASE}/status/notes/{{name:str}}")
async def notes(request: Request[Any, Any, Any]) -> Response[bytes]:
    name = request.path_params["name"]
    f = fac(request)
    _resource_type(f, name)
    return ok([_note(r) for r in f.outages.get(name, [])])


@get(f"{BASE}/status/outages")
async def all_outages(request: Request[Any, Any, Any]) -> Response[bytes]:
    f = fac(request)
    return ok([[_outage(r) for r in f.outages.get(n, [])] for n, _ in f.all_resources()])


@get(f"{BASE}/status/outages/{{name:str}}")
async def outages(request: Request[Any, Any, Any]) -> Response[bytes]:
    name = request.path_params["name"]
    f = fac(request)
    _resource_type(f, name)
    return ok([_outage(r) for r in f.outages.get(name, [])])


@get(f"{BASE}/status/outages/planned")
async def all_planned(request: Request[Any, Any, Any]) -> Response[bytes]:
    f = fac(request)
    return ok([_planned(f, n) for n, _ in f.all_resources()])


@get(f"{BASE}/status/outages/planned/{{name:str}}")
async def planned(request: Request[Any, Any, Any]) -> Response[bytes]:
    name = request.path_params["name"]
    f = fac(request)
    _resource_type(f, name)
    return ok(_planned(f, name))


CHANGELOG = [
    {"date": "2025-01-23", "change": "Outage status is an enum; job status accepts cached=false"},
    {"date": "2024-07-18", "change": "Added dtns machine, /account/clients and job callbacks"},
    {
        "date": "2023-07-05",
        "change": "Job status for several job ids in one request (kwargs=jobid=1,2,3)",
    },
]


@get(f"{BASE}/meta/changelog")
async def changelog() -> Response[bytes]:
    return ok(CHANGELOG)


@get(f"{BASE}/meta/config")
async def config(request: Request[Any, Any, Any]) -> Response[bytes]:
    f = fac(request)
    return ok(
        [
            {"key": "compute.targets", "value": ",".join(f.systems)},
            {"key": "api.version", "value": "1.2"},
            {"key": "simulator", "value": "superfed"},
        ]
    )


ROUTES = [
    all_status,
    one_status,
    all_notes,
    notes,
    all_outages,
    outages,
    all_planned,
    planned,
    changelog,
    config,
]
