"""Account endpoints: capabilities, projects, project and user allocations (sbank node hours).

A project allocation is one project on one compute system; its usage is the batch system's
accounting (node hours charged by finished and running jobs)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery, QueryParameter

from simulators.iri import catalog
from simulators.iri.common import (
    base_url,
    both,
    fac,
    not_modified,
    ok,
    page,
    parse_time,
    unit,
    user_of,
)
from simulators.iri.problems import Problem
from simulators.iri.state import IriFacility, iso


def capabilities(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    f, base = fac(request), base_url(request)
    out = []
    for r in f.resources.values():
        compute = r.kind == "compute"
        cid = catalog.capability_id(r.name)
        out.append(
            {
                "id": cid,
                "name": f"{r.name} {'node hours' if compute else 'storage'}",
                "last_modified": iso(f.started_at),
                "units": [unit(request, u) for u in (["node_hours"] if compute else ["bytes", "inodes"])],
                "self_uri": f"{base}/account/capabilities/{cid}",
            }
        )
    return out


def _project(f: IriFacility, project_id: str, user: str, base: str) -> dict[str, Any]:
    if project_id not in f.settings.projects or user != f.settings.user:
        raise Problem(404, f"The project ID '{project_id}' does not exist.")
    return {
        "id": project_id,
        "name": project_id,
        "description": f"ALCF allocation project {project_id}",
        "user_ids": [f.settings.user],
        "last_modified": iso(f.started_at),
        "self_uri": f"{base}/account/projects/{project_id}",
    }


def _allocations(request: Request[Any, Any, Any], project_id: str) -> list[dict[str, Any]]:
    f, base = fac(request), base_url(request)
    out = []
    for name, sysm in f.systems.items():
        sysm.advance()  # charge what finished since the last look
        usage = sysm.projects.get(project_id)
        if usage is None:
            continue
        aid = f"{project_id}.{name}"
        out.append(
            {
                "id": aid,
                "entries": [
                    {
                        "allocation": usage.allocated_node_hours,
                        "usage": round(usage.used_node_hours, 6),
                        "unit": f.quirks.allocation_unit or unit(request, "node_hours"),
                    }
                ],
                "project_uri": f"{base}/account/projects/{project_id}",
                "capability_uri": f"{base}/account/capabilities/{catalog.capability_id(name)}",
            }
        )
    return out


def _allocation(request: Request[Any, Any, Any], project_id: str, allocation_id: str) -> dict[str, Any]:
    for a in _allocations(request, project_id):
        if a["id"] == allocation_id:
            return a
    raise Problem(404, f"The project allocation ID '{allocation_id}' does not exist.")


def _user_allocation(
    f: IriFacility, pa: dict[str, Any], base: str, project_id: str
) -> dict[str, Any]:
    user = f.settings.user
    return {
        "id": f"{pa['id']}.{user}",
        "user_id": user,
        "entries": pa["entries"],
        "project_allocation_uri": f"{base}/account/projects/{project_id}"
        f"/project_allocations/{pa['id']}",
    }


@get(both("/account/capabilities"), sync_to_thread=False)
def get_capabilities(
    request: Request[Any, Any, Any],
    name: Annotated[str | None, QueryParameter(min_length=1)] = None,
    modified_since: FromQuery[str | None] = None,
    offset: Annotated[int, QueryParameter(ge=0, le=1000)] = 0,
    limit: Annotated[int, QueryParameter(ge=0, le=1000)] = 100,
) -> Response[bytes]:
    f = fac(request)
    since = parse_time(modified_since, "modified_since")
    caps = [
        c
        for c in capabilities(request)
        if (name is None or name.lower() in c["name"].lower())
        and (since is None or f.started_at > since)
    ]
    return ok(page(caps, offset, limit))


@get(both("/account/capabilities/{capability_id:str}"), sync_to_thread=False)
def get_capability(
    request: Request[Any, Any, Any],
    capability_id: FromPath[str],
    modified_since: FromQuery[str | None] = None,
) -> Response[bytes]:
    f = fac(request)
    since = parse_time(modified_since, "modified_since")
    for c in capabilities(request):
        if c["id"] == capability_id:
            return not_modified() if since is not None and f.started_at <= since else ok(c)
    raise Problem(404, f"The capability ID '{capability_id}' does not exist.")


@get(both("/account/projects"), sync_to_thread=False)
def get_projects(request: Request[Any, Any, Any]) -> Response[bytes]:
    user = user_of(request)
    f = fac(request)
    base = base_url(request)
    if user != f.settings.user:
        return ok([])
    return ok([_project(f, p, user, base) for p in f.settings.projects])


@get(both("/account/projects/{project_id:str}"), sync_to_thread=False)
def get_project(request: Request[Any, Any, Any], project_id: FromPath[str]) -> Response[bytes]:
    user = user_of(request)
    return ok(_project(fac(request), project_id, user, base_url(request)))


@get(both("/account/projects/{project_id:str}/project_allocations"), sync_to_thread=False)
def get_project_allocations(
    request: Request[Any, Any, Any], project_id: FromPath[str]
) -> Response[bytes]:
    user = user_of(request)
    f, base = fac(request), base_url(request)
    _project(f, project_id, user, base)
    return ok(_allocations(request, project_id))


@get(
    both("/account/projects/{project_id:str}/project_allocations/{project_allocation_id:str}"),
    sync_to_thread=False,
)
def get_project_allocation(
    request: Request[Any, Any, Any], project_id: FromPath[str], project_allocation_id: FromPath[str]
) -> Response[bytes]:
    user = user_of(request)
    f, base = fac(request), base_url(request)
    _project(f, project_id, user, base)
    return ok(_allocation(request, project_id, project_allocation_id))


@get(
    both(
        "/account/projects/{project_id:str}/project_allocations/{project_allocation_id:str}"
        "/user_allocations"
    ),
    sync_to_thread=False,
)
def get_user_allocations(
    request: Request[Any, Any, Any], project_id: FromPath[str], project_allocation_id: FromPath[str]
) -> Response[bytes]:
    user = user_of(request)
    f, base = fac(request), base_url(request)
    _project(f, project_id, user, base)
    pa = _allocation(request, project_id, project_allocation_id)
    return ok([_user_allocation(f, pa, base, project_id)])


@get(
    both(
        "/account/projects/{project_id:str}/project_allocations/{project_allocation_id:str}"
        "/user_allocations/{user_allocation_id:str}"
    ),
    sync_to_thread=False,
)
def get_user_allocation(
    request: Request[Any, Any, Any],
    project_id: FromPath[str],
    project_allocation_id: FromPath[str],
    user_allocation_id: FromPath[str],
) -> Response[bytes]:
    user = user_of(request)
    f, base = fac(request), base_url(request)
    _project(f, project_id, user, base)
    ua = _user_allocation(
        f, _allocation(request, project_id, project_allocation_id), base, project_id
    )
    if ua["id"] != user_allocation_id:
        raise Problem(404, f"The user allocation ID '{user_allocation_id}' does not exist.")
    return ok(ua)


ROUTES = [
    get_capabilities,
    get_capability,
    get_projects,
    get_project,
    get_project_allocations,
    get_project_allocation,
    get_user_allocations,
    get_user_allocation,
]
