"""Public, unauthenticated endpoints: facility, sites, resource status, incidents, events."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, QueryParameter

from simulators.iri import catalog
from simulators.iri.common import (
    API,
    API_V2,
    UNIT_URN,
    base_url,
    both,
    fac,
    is_v2,
    not_modified,
    ok,
    page,
    parse_time,
    resource_or_404,
    resource_type,
)
from simulators.iri.problems import Problem
from simulators.iri.state import Event, Incident, Resource, iso

# query parameters; their defaults sit on the handlers' parameters (Litestar's explicit style)
Offset = Annotated[int, QueryParameter(ge=0)]
Limit = Annotated[int, QueryParameter(ge=0, le=1000)]
Text = Annotated[str | None, QueryParameter(min_length=1)]
Opt = FromQuery[str | None]
STATUSES = ("up", "down", "degraded", "unknown")
RESOURCE_TYPES = ("website", "service", "compute", "system", "storage", "network", "unknown")
INCIDENT_TYPES = ("planned", "unplanned", "reservation")
RESOLUTIONS = ("unresolved", "cancelled", "completed", "extended", "pending")
UNITS = ("node_hours", "bytes", "inodes")  # AllocationUnit, what `capability` filters by


URN = re.compile(
    r"^urn:doe-iri:[A-Za-z0-9][A-Za-z0-9-]{0,31}:(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2}|[!$&'()*+,;=@]|/)+"
    r"(?::(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2}|[!$&'()*+,;=@]|/)+)*$"
)
ALLOCATION_URN = re.compile(
    r"^urn:doe-iri:allocation:(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2}|[!$&'()*+,;=@]|/)+"
    r"(?::(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2}|[!$&'()*+,;=@]|/)+)*$"
)


def _urn(value: str | None, name: str, pattern: re.Pattern[str]) -> None:
    if value is not None and not pattern.match(value):
        raise Problem(
            400,
            f"{name} must be a DOE IRI URN (urn:doe-iri:<domain>:<nss>)",
            invalid_params=[{"name": name, "reason": "not a DOE IRI URN"}],
        )


def _type_matches(have: str, asked: str, v2: bool) -> bool:
    """v1: the same word; v2: the same URN or a parent of it, segment by segment."""
    if not v2:
        return have == asked
    want = asked.split(":")
    return have.split(":")[: len(want)] == want


def _enum(value: str | None, name: str, allowed: tuple[str, ...]) -> str | None:
    if value is not None and value not in allowed:
        raise Problem(
            400,
            f"{name} must be one of {', '.join(allowed)}",
            invalid_params=[{"name": name, "reason": f"not one of {', '.join(allowed)}"}],
        )
    return value


def resource_body(request: Request[Any, Any, Any], r: Resource) -> dict[str, Any]:
    f, base = fac(request), base_url(request)
    compute = r.kind == "compute"
    return {
        "id": r.id,
        "name": r.name,
        "description": f"{r.name} {'compute nodes' if compute else 'filesystem'}",
        "group": r.name,
        "last_modified": iso(r.last_modified),
        "current_status": f.resource_status(r),
        "resource_type": resource_type(request, "compute" if compute else "storage"),
        "supported_endpoints": ["compute"] if compute else ["filesystem"],
        "self_uri": f"{base}/status/resources/{r.id}",
        "site_uri": f"{base}/facility/sites/{catalog.SITE_ID}",
        "capability_uris": [f"{base}/account/capabilities/{catalog.capability_id(r.name)}"],
    }


def incident_body(i: Incident, base: str) -> dict[str, Any]:
    return {
        "id": i.id,
        "name": i.name,
        "description": i.description,
        "last_modified": iso(i.last_modified),
        "status": i.status,
        "start": iso(i.start),
        "end": iso(i.end) if i.end is not None else None,
        "type": "unplanned",
        "resolution": i.resolution,
        "self_uri": f"{base}/status/incidents/{i.id}",
        "event_uris": [f"{base}/status/events/{e}" for e in i.event_ids],
        "resource_uris": [f"{base}/status/resources/{r}" for r in i.resource_ids],
    }


def event_body(e: Event, base: str) -> dict[str, Any]:
    return {
        "id": e.id,
        "name": e.name,
        "description": e.description,
        "last_modified": iso(e.occurred_at),
        "occurred_at": iso(e.occurred_at),
        "status": e.status,
        "self_uri": f"{base}/status/events/{e.id}",
        "resource_uri": f"{base}/status/resources/{e.resource_id}",
        "incident_uri": f"{base}/status/incidents/{e.incident_id}" if e.incident_id else None,
    }


def _match(text: str | None, needle: str | None) -> bool:
    return needle is None or (text is not None and needle.lower() in text.lower())


@get(both("/facility"), sync_to_thread=False)
def get_facility(
    request: Request[Any, Any, Any], modified_since: Opt = None
) -> Response[bytes]:
    f = fac(request)
    since = parse_time(modified_since, "modified_since")
    if since is not None and f.last_modified <= since:
        return not_modified()
    return ok(catalog.facility_body(base_url(request), iso(f.last_modified)))


@get(both("/facility/sites"), sync_to_thread=False)
def get_sites(
    request: Request[Any, Any, Any],
    offset: Offset = 0,
    limit: Limit = 100,
    name: Text = None,
    short_name: Text = None,
    modified_since: Opt = None,
) -> Response[bytes]:
    f = fac(request)
    since = parse_time(modified_since, "modified_since")
    site = catalog.site_body(base_url(request), iso(f.last_modified), list(f.resources))
    keep = _match(str(site["name"]), name) and _match(str(site["short_name"]), short_name)
    keep = keep and (since is None or f.last_modified > since)
    return ok(page([site] if keep else [], offset, limit))


@get(both("/facility/sites/{site_id:str}"), sync_to_thread=False)
def get_site(
    request: Request[Any, Any, Any],
    site_id: FromPath[str],
    modified_since: Opt = None,
) -> Response[bytes]:
    f = fac(request)
    since = parse_time(modified_since, "modified_since")
    if site_id != catalog.SITE_ID:
        raise Problem(404, f"The site ID '{site_id}' does not exist.")
    if since is not None and f.last_modified <= since:
        return not_modified()
    return ok(catalog.site_body(base_url(request), iso(f.last_modified), list(f.resources)))


@get(both("/status/resources"), sync_to_thread=False)
def get_resources(
    request: Request[Any, Any, Any],
    offset: Offset = 0,
    limit: Limit = 100,
    name: Text = None,
    description: Text = None,
    group: Text = None,
    resource_type: Opt = None,
    current_status: Opt = None,
    modified_since: Opt = None,
    capability: FromQuery[list[str] | None] = None,
) -> Response[bytes]:
    f = fac(request)
    v2 = is_v2(request)
    if v2:  # URNs: a parent URN matches its children (urn:doe-iri:resource:storage:system)
        _urn(resource_type, "resource_type", URN)
        for unit in capability or ():
            _urn(unit, "capability", ALLOCATION_URN)
    else:
        _enum(resource_type, "resource_type", RESOURCE_TYPES)
        for unit in capability or ():
            _enum(unit, "capability", UNITS)
    _enum(current_status, "current_status", STATUSES)
    units = {w: (UNIT_URN[w] if v2 else w) for w in UNITS}
    since = parse_time(modified_since, "modified_since")
    out = []
    for r in f.resources.values():
        body = resource_body(request, r)
        if not (
            _match(r.name, name)
            and _match(body["description"], description)
            and _match(r.name, group)
        ):
            continue
        if resource_type and not _type_matches(body["resource_type"], resource_type, v2):
            continue
        if current_status and body["current_status"] != current_status:
            continue
        if since is not None and r.last_modified <= since:
            continue
        has = {units["node_hours"]} if r.kind == "compute" else {units["bytes"], units["inodes"]}
        if capability and not set(capability) & has:
            continue
        out.append(body)
    return ok(page(out, offset, limit))


@get(both("/status/resources/{resource_id:str}"), sync_to_thread=False)
def get_resource(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f = fac(request)
    return ok(resource_body(request, resource_or_404(f, resource_id)))


def _in_window(
    start: float, end: float | None, lo: float | None, hi: float | None, at: float | None
) -> bool:
    stop = end if end is not None else float("inf")
    if lo is not None and stop < lo:
        return False
    if hi is not None and start > hi:
        return False
    return at is None or start <= at <= stop


@get(both("/status/incidents"), sync_to_thread=False)
def get_incidents(
    request: Request[Any, Any, Any],
    offset: Offset = 0,
    limit: Limit = 100,
    name: Text = None,
    description: Text = None,
    status: Opt = None,
    type_: Annotated[str | None, QueryParameter(name="type")] = None,
    resolution: Opt = None,
    resource_id: Text = None,
    from_: Annotated[str | None, QueryParameter(name="from")] = None,
    to: Opt = None,
    time_: Annotated[str | None, QueryParameter(name="time")] = None,
    modified_since: Opt = None,
) -> Response[bytes]:
    f = fac(request)
    base = base_url(request)
    _enum(status, "status", STATUSES)
    _enum(type_, "type", INCIDENT_TYPES)
    _enum(resolution, "resolution", RESOLUTIONS)
    lo, hi = parse_time(from_, "from"), parse_time(to, "to")
    at, since = parse_time(time_, "time"), parse_time(modified_since, "modified_since")
    out = [
        incident_body(i, base)
        for i in f.incidents.values()
        if _match(i.name, name)
        and _match(i.description, description)
        and (status is None or i.status == status)
        and (type_ is None or type_ == "unplanned")
        and (resolution is None or i.resolution == resolution)
        and (resource_id is None or resource_id in i.resource_ids)
        and (since is None or i.last_modified > since)
        and _in_window(i.start, i.end, lo, hi, at)
    ]
    return ok(page(out, offset, limit))


@get(both("/status/incidents/{incident_id:str}"), sync_to_thread=False)
def get_incident(request: Request[Any, Any, Any], incident_id: FromPath[str]) -> Response[bytes]:
    i = fac(request).incidents.get(incident_id)
    if i is None:
        raise Problem(404, f"The incident ID '{incident_id}' does not exist.")
    return ok(incident_body(i, base_url(request)))


@get(both("/status/events"), sync_to_thread=False)
def get_events(
    request: Request[Any, Any, Any],
    offset: Offset = 0,
    limit: Limit = 100,
    incident_id: Text = None,
    resource_id: Text = None,
    name: Text = None,
    description: Text = None,
    status: Opt = None,
    from_: Annotated[str | None, QueryParameter(name="from")] = None,
    to: Opt = None,
    time_: Annotated[str | None, QueryParameter(name="time")] = None,
    modified_since: Opt = None,
) -> Response[bytes]:
    f = fac(request)
    base = base_url(request)
    _enum(status, "status", STATUSES)
    lo, hi = parse_time(from_, "from"), parse_time(to, "to")
    at, since = parse_time(time_, "time"), parse_time(modified_since, "modified_since")
    out = [
        event_body(e, base)
        for e in f.events.values()
        if (incident_id is None or e.incident_id == incident_id)
        and (resource_id is None or e.resource_id == resource_id)
        and _match(e.name, name)
        and _match(e.description, description)
        and (status is None or e.status == status)
        and (since is None or e.occurred_at > since)
        and (lo is None or e.occurred_at >= lo)
        and (hi is None or e.occurred_at <= hi)
        and (at is None or abs(e.occurred_at - at) < 1)
    ]
    return ok(page(out, offset, limit))


@get(both("/status/events/{event_id:str}"), sync_to_thread=False)
def get_event(request: Request[Any, Any, Any], event_id: FromPath[str]) -> Response[bytes]:
    e = fac(request).events.get(event_id)
    if e is None:
        raise Problem(404, f"The event ID '{event_id}' does not exist.")
    return ok(event_body(e, base_url(request)))


def _kind_resources(request: Request[Any, Any, Any], kind: str) -> Response[bytes]:
    f = fac(request)
    return ok([resource_body(request, r) for r in f.resources.values() if r.kind == kind])


@get(both("/compute/resources"), sync_to_thread=False)
def get_compute_resources(request: Request[Any, Any, Any]) -> Response[bytes]:
    return _kind_resources(request, "compute")


@get(f"{API}/filesystem/resources", sync_to_thread=False)
def get_filesystem_resources(request: Request[Any, Any, Any]) -> Response[bytes]:
    return _kind_resources(request, "filesystem")


@post(f"{API_V2}/filesystem/resources", status_code=200)
async def post_filesystem_resources(request: Request[Any, Any, Any]) -> Response[bytes]:
    """v2 lists filesystem resources with POST (as its spec and the reference server do)."""
    return _kind_resources(request, "filesystem")


ROUTES = [
    get_facility,
    get_sites,
    get_site,
    get_resources,
    get_resource,
    get_incidents,
    get_incident,
    get_events,
    get_event,
    get_compute_resources,
    get_filesystem_resources,
    post_filesystem_resources,
]
