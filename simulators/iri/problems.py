"""Errors as the IRI API sends them: RFC 9457 problem details (the spec's ``Problem`` schema,
served as ``application/json`` as the v1 spec declares), and the handlers that turn every
failure, including Litestar's own, into one."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

log = logging.getLogger("superfed.sim.iri")

TITLES = {
    400: "Invalid parameter",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}
SLUGS = {
    400: "invalid-parameter",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    422: "unprocessable-entity",
    500: "internal-error",
    501: "not-implemented",
    503: "service-unavailable",
}


DEFAULT_ORIGIN = "https://api.alcf.anl.gov"


class Problem(Exception):
    """Raised by handlers; rendered by ``problem_handler``."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        invalid_params: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or SLUGS.get(status, "generic-error")
        self.invalid_params = invalid_params
        self.headers = headers or {}


def problem_body(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    base: str = "",
    instance: str = "",
    invalid_params: list[dict[str, str]] | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "type": f"{base or DEFAULT_ORIGIN}/problems/{slug or SLUGS.get(status, 'generic-error')}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": instance or "/",
    }
    if invalid_params:
        body["invalid_params"] = invalid_params
    return msgspec.json.encode(body)


def error_body(status: int, message: str) -> tuple[bytes, str]:
    """For the chaos middleware: the same shape."""
    return problem_body(status, message), "application/json"


def _origin(request: Request[Any, Any, Any]) -> str:
    host = request.headers.get("host", "localhost")
    return f"{request.url.scheme}://{host}"


def _render(request: Request[Any, Any, Any], exc: Problem) -> Response[bytes]:
    headers = dict(exc.headers)
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    body = problem_body(
        exc.status,
        exc.detail,
        slug=exc.slug,
        base=_origin(request),
        instance=str(request.url),
        invalid_params=exc.invalid_params,
    )
    return Response(body, status_code=exc.status, media_type="application/json", headers=headers)


def problem_handler(request: Request[Any, Any, Any], exc: Problem) -> Response[bytes]:
    return _render(request, exc)


def validation_handler(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[bytes]:
    """Litestar's parameter validation: 400 'Invalid parameter' naming each field."""
    params = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            params.append(
                {
                    "name": str(item.get("key", "unknown")),
                    "reason": str(item.get("message", "invalid")),
                }
            )
    detail = ", ".join(f"{p['name']}: {p['reason']}" for p in params) or str(exc.detail)
    return _render(request, Problem(400, detail, invalid_params=params or None))


def http_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status == 404:
        detail = "Invalid resource identifier."
    elif status == 405:
        detail = "HTTP method is not allowed for this resource."
    else:
        detail = str(exc.detail)
    return _render(request, Problem(status, detail))


def crash_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error in the IRI simulator", exc_info=exc)
    return _render(request, Problem(500, "An unexpected error occurred."))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    Problem: problem_handler,
    ValidationException: validation_handler,
    HTTPException: http_handler,
    Exception: crash_handler,
}


def decode_error(exc: msgspec.ValidationError | msgspec.DecodeError, what: str = "body") -> Problem:
    """A msgspec error as a 422 naming the field (``... - at `$.resources.node_count```)."""
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return Problem(400, f"Malformed JSON {what}: {text}", slug="invalid-body")
    reason, _, where = text.partition(" - at `")
    field = where.rstrip("`").removeprefix("$").lstrip(".")
    missing = re.search(r"missing required field `([^`]+)`", reason)
    if missing:  # name the field itself, as FastAPI's 422 does ("Field required")
        field = f"{field}.{missing.group(1)}" if field else missing.group(1)
        reason = "Field required"
    field = field or what
    return Problem(422, f"{field}: {reason}", invalid_params=[{"name": field, "reason": reason}])
