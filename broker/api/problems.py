"""RFC 9457 problem details for every error; never a traceback."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException, ValidationException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.validation import DESCRIPTIONS

log = logging.getLogger("superfed.api")
PROBLEM = "application/problem+json"


class FieldError(msgspec.Struct, omit_defaults=True):
    field: str
    message: str
    source: str | None = None


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None
    instance: str | None = None


class ApiError(Exception):
    """An error the API reports as it is: ``status``, a short ``title``, a ``detail`` sentence."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def _type(status: int) -> str:
    return f"https://superfed.dev/problems/{status}"


def problem_response(
    status: int,
    title: str,
    detail: str,
    request: Request[Any, Any, Any] | None = None,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body = Problem(
        type=_type(status),
        title=title,
        status=status,
        detail=detail,
        errors=errors,
        instance=request.url.path if request is not None else None,
    )
    return Response(msgspec.json.encode(body), status_code=status, media_type=PROBLEM, headers=headers)


_REGEX_MESSAGE = re.compile(r"Expected `str` matching regex '(.*)'", re.S)


def _readable(message: str) -> str:
    """msgspec names a failed pattern by its regex; say what the pattern means instead."""
    m = _REGEX_MESSAGE.fullmatch(message)
    if m is None:
        return message
    raw = m.group(1)
    for pattern, words in DESCRIPTIONS.items():
        if raw in (pattern, pattern.replace("\\", "\\\\")):
            return f"must be {words}"
    return message


def _field_errors(extra: Any) -> list[FieldError] | None:
    if not isinstance(extra, list):
        return None
    out = []
    for item in extra:
        if isinstance(item, dict):
            key = str(item.get("key") or "body")
            message = _readable(str(item.get("message", "")))
            out.append(FieldError(field=key, message=message, source=item.get("source")))
    return out or None


def on_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[bytes]:
    return problem_response(exc.status, exc.title, exc.detail, request, errors=exc.errors, headers=exc.headers)


def on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    errors = _field_errors(exc.extra)
    # 422 for a body that fails validation; a bad parameter is a 400, whatever the method
    status = (
        422
        if request.method in ("POST", "PUT", "PATCH") and errors and any(e.source == "body" for e in errors)
        else 400
    )
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors) if errors else str(exc.detail)
    return problem_response(
        status, "Invalid request" if status == 400 else "Validation failed", detail, request, errors=errors
    )


def on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if isinstance(exc, NotAuthorizedException):
        headers = {"WWW-Authenticate": 'Bearer realm="superfed"'}
    else:
        headers = dict(exc.headers or {})
    detail = str(exc.detail) if exc.detail else _TITLES.get(status, "Error")
    title = _TITLES.get(status, "Error")
    if isinstance(exc, PermissionDeniedException):
        title = _TITLES[403]
    return problem_response(status, title, detail, request, errors=_field_errors(exc.extra), headers=headers)


def on_redis_down(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.warning("redis unavailable: %s", exc)
    return problem_response(
        503,
        "Service unavailable",
        "the job store (Redis) is not reachable; try again shortly",
        request,
        headers={"Retry-After": "2"},
    )


def on_too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[bytes]:
    """JSON nested deeper than the decoder recurses is the client's problem, not ours: a 400,
    logged in one line (no traceback)."""
    log.warning("refused a body nested too deeply on %s %s", request.method, request.url.path)
    return problem_response(
        400, "Invalid request", "the JSON body is nested too deeply (or is otherwise too deep to read)", request
    )


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        500, "Internal error", "the broker failed to handle this request; it has been logged", request
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: on_api_error,
    ValidationException: on_validation,
    HTTPException: on_http,
    RedisConnectionError: on_redis_down,
    RedisTimeoutError: on_redis_down,
    RecursionError: on_too_deep,
    Exception: on_unexpected,
}
