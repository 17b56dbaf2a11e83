"""Helpers every IRI route module shares: auth, URL prefixes, JSON answers, query filters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, Response

from simulators.common.control import facility_of
from simulators.common.facility import TokenError
from simulators.iri.problems import Problem
from simulators.iri.state import IriFacility, Resource

API = "/api/v1"
API_V2 = "/api/v2"
# v2 writes resource types and allocation units as DOE IRI URNs (the reference
# implementation's app/types/scalars.py); v1 keeps the words
RESOURCE_TYPE_URN = {"compute": "urn:doe-iri:resource:compute", "storage": "urn:doe-iri:resource:storage"}
UNIT_URN = {
    "node_hours": "urn:doe-iri:allocation:compute:node-hours",
    "bytes": "urn:doe-iri:allocation:storage:bytes",
    "inodes": "urn:doe-iri:allocation:storage:inodes",
}
_TOKEN_DETAIL = {
    "missing": "Bearer token is missing.",
    "invalid": "Bearer token is invalid.",
    "expired": "Bearer token has expired.",
    "revoked": "Bearer token has been revoked.",
}


def fac(request: Request[Any, Any, Any]) -> IriFacility:
    facility: IriFacility = facility_of(request)  # type: ignore[assignment]
    version = API_V2 if is_v2(request) else API
    if version.rsplit("/", 1)[-1] not in facility.versions:  # e.g. ALCF serves v1 only
        raise Problem(404, f"Not Found: this facility does not serve {version}")
    return facility


def user_of(request: Request[Any, Any, Any]) -> str:
    """The authenticated user, or a 401 problem saying why not."""
    facility = fac(request)
    try:
        claims = facility.verify_token(request.headers.get("authorization"))
    except TokenError as exc:
        raise Problem(
            401, _TOKEN_DETAIL.get(exc.reason, "Bearer token is missing or invalid.")
        ) from None
    return str(claims.get("sub") or facility.settings.user)


def both(suffix: str) -> list[str]:
    """The same route under /api/v1 and /api/v2 (where the versions agree)."""
    return [f"{API}{suffix}", f"{API_V2}{suffix}"]


def is_v2(request: Request[Any, Any, Any]) -> bool:
    return request.scope["path"].startswith(API_V2 + "/")


def base_url(request: Request[Any, Any, Any]) -> str:
    host = request.headers.get("host", "localhost")
    return f"{request.url.scheme}://{host}{API_V2 if is_v2(request) else API}"


def resource_type(request: Request[Any, Any, Any], word: str) -> str:
    return RESOURCE_TYPE_URN[word] if is_v2(request) else word


def unit(request: Request[Any, Any, Any], word: str) -> str:
    return UNIT_URN[word] if is_v2(request) else word


def ok(body: Any, status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def not_modified() -> Response[bytes]:
    return Response(b"", status_code=304)


def parse_time(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Problem(
            400,
            f"{name} must be an ISO 8601 date-time",
            invalid_params=[{"name": name, "reason": "Invalid datetime format"}],
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def page(items: list[Any], offset: int, limit: int) -> list[Any]:
    return items[offset : offset + limit]


def resource_or_404(facility: IriFacility, resource_id: str, kind: str | None = None) -> Resource:
    res = facility.resources.get(resource_id)
    if res is None or (kind is not None and res.kind != kind):
        what = f"{kind} resource" if kind else "resource"
        raise Problem(404, f"The {what} ID '{resource_id}' does not exist.")
    return res


def read_json(raw: bytes, type_: Any, what: str = "body") -> Any:
    from simulators.iri.problems import decode_error

    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise decode_error(exc, what) from None
