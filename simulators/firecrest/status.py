"""``/status``: systems (with their services' health), nodes, partitions, reservations,
userinfo, liveness."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.params import FromPath

from simulators.firecrest.auth import authenticate
from simulators.firecrest.common import Req, compute_context, facility, query_bool, respond, system_of
from simulators.firecrest.state import iso


@get("/status/systems", sync_to_thread=False)
def get_systems(request: Req) -> Response[bytes]:
    fac = facility(request)
    user = authenticate(request, fac)
    return respond({"systems": [fac.system_info(name) for name in fac.systems]}, user)


@get("/status/liveness/", sync_to_thread=False)
def get_liveness(request: Req) -> Response[bytes]:
    fac = facility(request)
    now = fac.clock()
    return respond(
        {"healthcheckRuns": {name: iso(now) for name in fac.systems}, "lastUpdate": int(now)}, None
    )


@get("/status/{system_name:str}/nodes", sync_to_thread=False)
def get_nodes(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    _, user, sysm = compute_context(request, system_name)
    sysm.advance()
    busy = sysm.total_nodes - sysm.free_nodes
    nodes: list[dict[str, Any]] = []
    for i in range(sysm.total_nodes):
        nodes.append(
            {
                "name": f"nid{i + 1:06d}",
                "hostname": f"nid{i + 1:06d}",
                "address": f"nid{i + 1:06d}",
                "cpus": 288,
                "sockets": 4,
                "cores": 72,
                "threads": 1,
                "allocCpus": 288 if i < busy else 0,
                "idleCpus": 0 if i < busy else 288,
                "cpuLoad": 1.0 if i < busy else 0.0,
                "freeMemory": 460000,
                "allocMemory": 0,
                "state": ["ALLOCATED"] if i < busy else ["IDLE"],
                "partitions": list(sysm.partitions),
                "features": ["gh200"],
                "weight": 1,
            }
        )
    return respond({"nodes": nodes}, user)


@get("/status/{system_name:str}/partitions", sync_to_thread=False)
def get_partitions(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    _, user, sysm = compute_context(request, system_name)
    query_bool(request.query_params, "show_hidden")  # validated; no partition is hidden
    parts = [
        {"name": p.name, "partition": p.name, "cpus": 288 * p.max_nodes, "totalNodes": p.max_nodes}
        for p in sysm.partitions.values()
    ]
    return respond({"partitions": parts}, user)


@get("/status/{system_name:str}/reservations", sync_to_thread=False)
def get_reservations(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    fac, user, _ = compute_context(request, system_name)
    return respond({"reservations": list(fac.reservations.values())}, user)


@get("/status/{system_name:str}/userinfo", sync_to_thread=False)
def get_userinfo(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    fac = facility(request)
    user = authenticate(request, fac)
    system_of(fac, system_name, user)
    s = fac.settings
    group = {"id": str(s.uid), "name": s.user}
    accounts = [{"name": p, "default": i == 0} for i, p in enumerate(s.projects)]
    return respond(
        {
            "user": {"id": str(s.uid), "name": s.user},
            "group": group,
            "groups": [group],
            "accounts": accounts,
        },
        user,
    )


ROUTES = [get_systems, get_liveness, get_nodes, get_partitions, get_reservations, get_userinfo]
