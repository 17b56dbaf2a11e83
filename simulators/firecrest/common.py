"""What every FirecREST route does first: authenticate, find the system, check its health
(in that order, as the v2 dependencies do), and answer JSON with the F7T-* headers."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response

from simulators.common.control import facility_of
from simulators.common.scheduler import BatchSystem
from simulators.firecrest.auth import authenticate
from simulators.firecrest.errors import FirecrestError, field_error, meta_headers
from simulators.firecrest.state import FILESYSTEMS, FirecrestFacility

Req = Request[Any, Any, Any]


def respond(body: Any, user: str | None, status: int = 200) -> Response[bytes]:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers=meta_headers(user),
    )


def no_content(user: str) -> Response[bytes]:
    return Response(b"", status_code=204, headers=meta_headers(user))


# pydantic's lax booleans, as FastAPI parses FirecREST's boolean query parameters
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def query_bool(query: Any, key: str) -> bool:
    """A boolean query parameter (default false); anything else is FirecREST's 400."""
    raw = query.get(key)
    if raw is None:
        return False
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise field_error("query", key, "Input should be a valid boolean, unable to interpret input")


def facility(request: Req) -> FirecrestFacility:
    return facility_of(request)  # type: ignore[return-value]


def system_of(fac: FirecrestFacility, system_name: str, user: str) -> tuple[str, BatchSystem]:
    # FirecREST v2 lower-cases request paths: system names are case-insensitive
    name = system_name.lower()
    sysm = fac.systems.get(name)
    if sysm is None:
        for key, value in fac.systems.items():
            if key.lower() == name:
                return key, value
        raise FirecrestError(404, "System not found", user=user)
    return name, sysm


def compute_context(request: Req, system_name: str) -> tuple[FirecrestFacility, str, BatchSystem]:
    fac = facility(request)
    user = authenticate(request, fac)
    name, sysm = system_of(fac, system_name, user)
    if fac.is_down("login"):
        raise FirecrestError(
            503, f"The ssh service for the requested system ({name}) is unhealthy.", user=user
        )
    if not fac.scheduler_healthy():
        raise FirecrestError(
            503, f"The scheduler service for the requested system ({name}) is unhealthy.", user=user
        )
    return fac, user, sysm


def filesystem_context(
    request: Req, system_name: str, path: str | None
) -> tuple[FirecrestFacility, str, str]:
    fac = facility(request)
    user = authenticate(request, fac)
    name, _ = system_of(fac, system_name, user)
    if path is None:
        raise FirecrestError(
            400, "All filesystem requests require a path or source_path parameter.", user=user
        )
    if fac.is_down("login"):
        raise FirecrestError(
            503, f"The ssh service for the requested system ({name}) is unhealthy.", user=user
        )
    if not fac.filesystem_healthy():
        mount = next((p for p, _, _ in FILESYSTEMS if path.startswith(p)), FILESYSTEMS[0][0])
        raise FirecrestError(
            503, f"The requested filesystem ({mount} on {name}) is unhealthy.", user=user
        )
    return fac, user, name
