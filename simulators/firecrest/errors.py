"""FirecREST v2's one error shape, and the exception handlers that produce it.

Every error is ``{"errorType", "message", "causedBy", "data", "user"}`` (``ApiResponseError``
in the v2 source).  Request validation is 400 with ``errorType: "validation"`` and
``data.fields`` (FirecREST turns FastAPI's 422 into 400).  Nothing leaves as a traceback.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException

APP_VERSION = "2.5.6"  # a real release number: pyfirecrest 3.10 adopts it from F7T-AppVersion


class FirecrestError(Exception):
    """An error answer in FirecREST's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "error",
        caused_by: list[str] | None = None,
        data: dict[str, Any] | None = None,
        user: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.caused_by = caused_by
        self.data = data
        self.user = user


def validation_error(fields: list[dict[str, Any]]) -> FirecrestError:
    n = len(fields)
    summary = "; ".join(f"{f.get('location')}.{f.get('name')}: {f.get('message')}" for f in fields)
    return FirecrestError(
        400,
        f"{n} validation error{'s' if n != 1 else ''}: {summary}",
        error_type="validation",
        data={"fields": fields},
    )


def field_error(location: str, name: str, message: str) -> FirecrestError:
    return validation_error([{"location": location, "name": name, "message": message}])


def meta_headers(user: str | None = None) -> dict[str, str]:
    headers = {"F7T-Timestamp": repr(time.time()), "F7T-AppVersion": APP_VERSION}
    if user:
        headers["F7T-AuthUsername"] = user
    return headers


def error_bytes(
    status: int,
    message: str,
    *,
    error_type: str = "error",
    caused_by: list[str] | None = None,
    data: dict[str, Any] | None = None,
    user: str | None = None,
) -> bytes:
    return msgspec.json.encode(
        {
            "errorType": error_type,
            "message": message,
            "causedBy": caused_by,
            "data": data,
            "user": user,
        }
    )


def chaos_error_body(status: int, message: str) -> tuple[bytes, str]:
    """For the chaos middleware: a simulated failure in FirecREST's own shape."""
    return error_bytes(status, message), "application/json"


def _response(exc: FirecrestError) -> Response[bytes]:
    body = error_bytes(
        exc.status,
        exc.message,
        error_type=exc.error_type,
        caused_by=exc.caused_by,
        data=exc.data,
        user=exc.user,
    )
    return Response(
        body, status_code=exc.status, media_type="application/json", headers=meta_headers(exc.user)
    )


def on_firecrest_error(_: Request[Any, Any, Any], exc: FirecrestError) -> Response[bytes]:
    return _response(exc)


def on_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    fields: list[dict[str, Any]] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict):
            fields.append(
                {
                    "location": item.get("source") or "query",
                    "name": item.get("key"),
                    "message": item.get("message"),
                }
            )
    if not fields:
        fields.append(
            {"location": "body", "name": None, "message": exc.detail or "Invalid request"}
        )
    return _response(validation_error(fields))


def on_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    # Starlette-style messages, as FastAPI gives them
    if isinstance(exc, NotFoundException):
        return _response(FirecrestError(404, "Not Found"))
    if exc.status_code == 405:
        return _response(FirecrestError(405, "Method Not Allowed"))
    return _response(FirecrestError(exc.status_code, exc.detail or "Error"))


def on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # A bug in the simulator still answers in FirecREST's shape (and is loud in tests).
    return _response(
        FirecrestError(500, f"An error occurred during the request process: {type(exc).__name__}")
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    FirecrestError: on_firecrest_error,
    ValidationException: on_validation,
    HTTPException: on_http,
    Exception: on_unexpected,
}
