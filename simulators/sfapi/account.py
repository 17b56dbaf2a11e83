"""``/account`` (the user, projects with hours from the BatchSystem accounting, roles,
groups, API clients) and ``/storage/globus`` (transfers that simply succeed)."""

from __future__ import annotations

import zlib
from typing import Any

from litestar import Request, Response, get, post, put

from simulators.sfapi.rows import pacific_iso
from simulators.sfapi.state import SfapiFacility
from simulators.sfapi.wire import BASE, ApiError, fac, form, missing, ok, require_user

CLIENT_LIFETIME_S = 48 * 3600  # a "red" client (the only kind that may submit) lasts two days


def _projects(f: SfapiFacility) -> list[dict[str, Any]]:
    out = []
    for i, (name, allocated) in enumerate(f.settings.projects.items()):
        used = sum(
            s.projects[name].used_node_hours for s in f.systems.values() if name in s.projects
        )
        out.append(
            {
                "id": 1000 + i,
                "description": f"Simulated project {name}",
                "repo_name": name,
                "iris_role": "PI" if i == 0 else "USER",
                "hours_given": allocated,
                "hours_used": round(used, 6),
                "project_hours_given": allocated,
                "project_hours_used": round(used, 6),
                "cpu_hours_given": allocated,
                "cpu_hours_used": round(used, 6),
                "cpu_project_hours_given": allocated,
                "cpu_project_hours_used": round(used, 6),
                "gpu_hours_given": 0.0,
                "gpu_hours_used": 0.0,
                "gpu_project_hours_given": 0.0,
                "gpu_project_hours_used": 0.0,
                "projdir_usage": [],
                "project_projdir_usage": {
                    "name": name,
                    "bytes_given": 20e12,
                    "bytes_used": 0.0,
                    "bytes_given_human": "20.00 TB",
                    "bytes_used_human": "0 B",
                    "files_given": 20e6,
                    "files_used": 0.0,
                },
                "hpss_usage": [],
            }
        )
    return out


def _group(f: SfapiFacility, name: str, gid: int) -> dict[str, Any]:
    return {"gid": gid, "name": name, "users": [{"uid": f.settings.uid, "name": f.settings.user}]}


@get([f"{BASE}/account", f"{BASE}/account/"])
async def user(request: Request[Any, Any, Any]) -> Response[bytes]:
    require_user(request)
    f = fac(request)
    name = request.query_params.get("username") or f.settings.user
    return ok(
        {
            "uid": f.settings.uid
            if name == f.settings.user
            else 60000 + zlib.crc32(name.encode()) % 10000,
            "name": name,
            "firstname": name.capitalize(),
            "lastname": "Simulated",
            "middlename": None,
            "workphone": None,
            "otherPhones": None,
            "email": f"{name}@example.org",
        }
    )


@get(f"{BASE}/account/projects")
async def projects(request: Request[Any, Any, Any]) -> Response[bytes]:
    require_user(request)
    return ok(_projects(fac(request)))


@get(f"{BASE}/account/roles")
async def roles(request: Request[Any, Any, Any]) -> Response[bytes]:
    require_user(request)
    return ok(
        [
            {
                "id": p["id"],
                "description": p["description"],
                "repo_name": p["repo_name"],
                "iris_role": p["iris_role"],
            }
            for p in _projects(fac(request))
        ]
    )


@get(f"{BASE}/account/groups")
async def groups(request: Request[Any, Any, Any]) -> Response[bytes]:
    require_user(request)
    f = fac(request)
    return ok({"groups": [_group(f, n, 70000 + i) for i, n in enumerate(f.settings.projects)]})


@post(f"{BASE}/account/groups", status_code=200)
async def create_group(request: Request[Any, Any, Any]) -> Response[bytes]:
    require_user(request)
    data = await form(request)
    absent = [("body", k) for k in ("name", "repo_name") if k not in data]
    if absent:
        raise missing(*absent)
    return ok(_group(fac(request), data["name"][0], 71000))


@get(f"{BASE}/account/groups/{{group:str}}")
async def group(request: Request[Any, Any, Any]) -> Response[bytes]:
    group = request.path_params["group"]
    require_user(request)
    f = fac(request)
    if group not in f.settings.projects:
        raise ApiError(404, f"Group {group} not found")
    return ok(_group(f, group, 70000 + list(f.settings.projects).index(group)))


GROUP_ACTIONS = ("batch_add", "batch_remove")


@put(f"{BASE}/account/groups/{{group:str}}", status_code=200)
async def update_group(request: Request[Any, Any, Any]) -> Response[bytes]:
    group = request.path_params["group"]
    require_user(request)
    data = await form(request)
    absent = [("body", k) for k in ("usernames", "action") if k not in data]
    if absent:
        raise missing(*absent)
    action = data["action"][0]
    if action not in GROUP_ACTIONS:  # FastAPI's answer for a value outside the enum
        raise ApiError(422, [{"type": "enum", "loc": ["body", "action"],
                              "msg": "Input should be 'batch_add' or 'batch_remove'", "input": action,
                              "ctx": {"expected": "'batch_add' or 'batch_remove'"}}])
    f = fac(request)
    if group not in f.settings.projects:
        raise ApiError(404, f"Group {group} not found")
    body = _group(f, group, 70000 + list(f.settings.projects).index(group))
    if action == "batch_add":
        body["users"] += [
            {"uid": 60000 + i, "name": u} for i, u in enumerate(data["usernames"][0].split(","))
        ]
    return ok(body)


@get(f"{BASE}/account/clients")
async def clients(request: Request[Any, Any, Any]) -> Response[bytes]:
    claims = require_user(request)
    f = fac(request)
    cid = f.settings.client_id or claims.get("client_id") or "simulatedcli1"
    return ok(
        [
            {
                "name": "superfed",
                "clientId": cid,
                "expiresAt": pacific_iso(f.started_at + CLIENT_LIFETIME_S),
                "comments": "red client",
            }
        ]
    )


@post(f"{BASE}/storage/globus/transfer", status_code=200)
async def globus_start(request: Request[Any, Any, Any]) -> Response[bytes]:
    require_user(request)
    data = await form(request)
    absent = [
        ("body", k)
        for k in ("source_uuid", "target_uuid", "source_dir", "target_dir")
        if k not in data
    ]
    if absent:
        raise missing(*absent)
    t = fac(request).new_transfer()
    return ok({"transfer_id": t.id, "status": "OK", "reason": None})


@get(f"{BASE}/storage/globus/transfer/{{transfer_id:str}}")
async def globus_status(request: Request[Any, Any, Any]) -> Response[bytes]:
    transfer_id = request.path_params["transfer_id"]
    require_user(request)
    f = fac(request)
    t = f.transfers.get(transfer_id)
    if t is None:
        return ok(
            {
                "status": "ERROR",
                "reason": f"Transfer {transfer_id} not found",
                "globus_status": None,
            }
        )
    return ok(
        {
            "status": "OK",
            "reason": None,
            "globus_status": "SUCCEEDED",
            "bytes_transferred": t.bytes,
            "completion_time": pacific_iso(t.created + 1),
            "effective_bytes_per_second": t.bytes,
        }
    )


ROUTES = [
    user,
    projects,
    roles,
    groups,
    create_group,
    group,
    update_group,
    clients,
    globus_start,
    globus_status,
]
