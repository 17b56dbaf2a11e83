"""Wire helpers shared by the SF API routes: FastAPI-shaped errors, bearer checks, forms."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request, Response

from simulators.common.control import facility_of
from simulators.common.facility import TokenError
from simulators.sfapi.state import PUBLIC_HOSTS, SfapiFacility

BASE = "/api/v1.2"
_JSON = "application/json"
_encode = msgspec.json.Encoder().encode

_TOKEN_DETAIL = {
    "missing": "Not authenticated: missing bearer token",
    "invalid": "Could not validate credentials: invalid token",
    "expired": "Could not validate credentials: token expired",
    "revoked": "Could not validate credentials: token revoked",
}


class ApiError(Exception):
    """Raised by a handler; rendered as FastAPI's ``{"detail": ...}`` with ``status``."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None):
        super().__init__(str(detail))
        self.status = status
        self.detail = detail
        self.headers = headers


def ok(body: Any, status: int = 200) -> Response[bytes]:
    return Response(_encode(body), status_code=status, media_type=_JSON)


def error_body(status: int, message: str) -> tuple[bytes, str]:
    return _encode({"detail": message}), _JSON


def fac(request: Request[Any, Any, Any]) -> SfapiFacility:
    return facility_of(request)  # type: ignore[return-value]


def require_user(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Claims of the caller's bearer token, or a 401 naming why it was refused."""
    try:
        return fac(request).verify_token(request.headers.get("authorization"))
    except TokenError as exc:
        raise ApiError(
            401,
            _TOKEN_DETAIL.get(exc.reason, "Could not validate credentials"),
            {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{exc.reason}"'},
        ) from None


def machine(request: Request[Any, Any, Any], name: str) -> SfapiFacility:
    """The facility, after checking the path's machine is one this simulator runs."""
    facility = fac(request)
    if name not in facility.systems or name not in PUBLIC_HOSTS:
        raise ApiError(404, "Not Found")
    return facility


def missing(*fields: tuple[str, str]) -> ApiError:
    """FastAPI's 422 for absent required fields: (location, name) pairs."""
    return ApiError(
        422,
        [
            {"type": "missing", "loc": [where, name], "msg": "Field required", "input": None}
            for where, name in fields
        ],
    )


def bad_bool(where: str, name: str, value: str) -> ApiError:
    return ApiError(
        422,
        [
            {
                "type": "bool_parsing",
                "loc": [where, name],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": value,
            }
        ],
    )


_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}


def as_bool(value: str | None, default: bool, where: str, name: str) -> bool:
    if value is None:
        return default
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise bad_bool(where, name, value)


async def form(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    """An urlencoded body as name -> values (repeated keys kept, like ``args=a&args=b``)."""
    ctype = request.headers.get("content-type", "")
    out: dict[str, list[str]] = {}
    if ctype.startswith("multipart/form-data"):
        data = await request.form()
        for key, value in data.multi_items():
            if isinstance(value, str):
                out.setdefault(key, []).append(value)
        return out
    body = await request.body()
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        out.setdefault(key, []).append(value)
    return out
