"""RFC 9457 problem details for every error; never a traceback.

Litestar's problem-details plugin answers every error: ``ApiError`` is its exception (a
``ProblemDetailsException``) and every other error the API meets is converted into one by
``exception_to_problem_detail_map``. Each route declares the documents it may answer
(``responses=api_problems(...)``, broker/api/openapi_docs.py)."""

from __future__ import annotations

import logging
import re
from enum import Enum
from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException, ValidationException
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException, ProblemDetailsPlugin
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.validation import DESCRIPTIONS

log = logging.getLogger("superfed.api")
PROBLEM = "application/problem+json"


class FieldError(msgspec.Struct, omit_defaults=True):
    """One offending field of a request"""

    field: str
    message: str
    # body, query, header or path; "" (left out) when unknown
    source: Annotated[str, msgspec.Meta(description="where the field is: body, query, header or path")] = ""


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details"""

    type: str
    title: str
    status: int
    detail: str
    errors: Annotated[list[FieldError], msgspec.Meta(description="each offending field, for a request that has some")
                      ] = msgspec.field(default_factory=list)  # left out when empty
    instance: Annotated[str, msgspec.Meta(description="the request's path")] = ""  # "" (left out): none


def _type(status: int) -> str:
    return f"https://superfed.dev/problems/{status}"


class ApiError(ProblemDetailsException):
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
        super().__init__(detail=detail, status_code=status, headers=headers, type_=_type(status), title=title)
        self.errors = errors or []

    def to_response(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        # The plugin's own body names `instance` only when the raiser knew it and puts a list of
        # errors under "extra"; ours is the Problem above (its fields, in its order), with the
        # request's path as `instance`.
        body = Problem(type=self.type_ or _type(self.status_code), title=self.title or "Error",
                       status=self.status_code, detail=self.detail, errors=self.errors,
                       instance=request.url.path)
        return Response(msgspec.to_builtins(body), status_code=self.status_code, media_type=PROBLEM,
                        headers=self.headers)


# ---- what every other error becomes ------------------------------------------------------------

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

_REGEX_MESSAGE = re.compile(r"Expected `str` matching regex '(.*)'", re.S)


def readable(message: str) -> str:
    """msgspec names a failed pattern by its regex; say what the pattern means instead."""
    m = _REGEX_MESSAGE.fullmatch(message)
    if m is None:
        return message
    raw = m.group(1)
    for pattern, words in DESCRIPTIONS.items():
        if raw in (pattern, pattern.replace("\\", "\\\\")):
            return f"must be {words}"
    return message


def _source(item: dict[str, Any]) -> str:
    source = item.get("source") or ""
    return str(source.value if isinstance(source, Enum) else source)  # Litestar's ParamType: "query"


def _field_errors(extra: Any) -> list[FieldError]:
    if not isinstance(extra, list):
        return []
    return [
        FieldError(field=str(item.get("key") or "body"), message=readable(str(item.get("message", ""))),
                   source=_source(item))
        for item in extra
        if isinstance(item, dict)
    ]


def from_validation(exc: ValidationException) -> ApiError:
    """422 for a body that fails validation; a bad parameter is a 400. Only the POST and PUT
    routes take a body, so a "body" source is enough to tell (the conversion sees no request)."""
    errors = _field_errors(exc.extra)
    if any(e.source == "body" for e in errors):
        status, title = 422, "Validation failed"
    else:
        status, title = 400, "Invalid request"
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors) if errors else str(exc.detail)
    return ApiError(status, title, detail, errors=errors)


def from_http(exc: HTTPException) -> ApiError:
    """Litestar's own errors (404 route, 405, 413 body limit, malformed JSON...) and the auth ones."""
    status = exc.status_code
    if isinstance(exc, NotAuthorizedException):
        headers = {"WWW-Authenticate": 'Bearer realm="superfed"'}
    else:
        headers = dict(exc.headers or {})
    title = _TITLES[403] if isinstance(exc, PermissionDeniedException) else _TITLES.get(status, "Error")
    detail = str(exc.detail) if exc.detail else _TITLES.get(status, "Error")
    return ApiError(status, title, detail, errors=_field_errors(exc.extra), headers=headers)


def from_redis_down(exc: RedisConnectionError | RedisTimeoutError | ReadOnlyError) -> ApiError:
    log.warning("redis unavailable: %s", exc)
    return ApiError(503, "Service unavailable", "the job store (Redis) is not reachable; try again shortly",
                    headers={"Retry-After": "2"})


def from_watch_lost(exc: WatchError) -> ApiError:
    """redis-py raises WatchError, not ConnectionError, when the connection of a pipeline that
    WATCHes drops (a Redis or Sentinel failover between WATCH and EXEC: the idempotent intake):
    nothing was written, so it is a 503 the client retries with its key. Any other WatchError
    reaching here is a bug: 500."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, RedisConnectionError | RedisTimeoutError):
        return from_redis_down(cause)
    log.error("unexpected WatchError: %s", exc, exc_info=exc)
    return ApiError(500, "Internal error", "the broker failed to handle this request; it has been logged")


# These two stay plain exception handlers: their log line names the request, and the plugin's
# conversion functions see only the exception.
def on_too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    """JSON nested deeper than the decoder recurses is the client's problem, not ours: a 400,
    logged in one line (no traceback)."""
    log.warning("refused a body nested too deeply on %s %s", request.method, request.url.path)
    return ApiError(400, "Invalid request", "the JSON body is nested too deeply (or is otherwise too deep to read)"
                    ).to_response(request)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return ApiError(500, "Internal error", "the broker failed to handle this request; it has been logged"
                    ).to_response(request)


def problem_details() -> ProblemDetailsPlugin:
    """The plugin for one app: it answers ApiError and converts the errors above into one."""
    return ProblemDetailsPlugin(ProblemDetailsConfig(exception_to_problem_detail_map={
        HTTPException: from_http,
        ValidationException: from_validation,
        RedisConnectionError: from_redis_down,
        RedisTimeoutError: from_redis_down,
        WatchError: from_watch_lost,
        # a write that reached a primary demoted to replica (a failover the client has not seen
        # yet): nothing was written; the client retries with its key
        ReadOnlyError: from_redis_down,
    }))


EXCEPTION_HANDLERS: dict[Any, Any] = {RecursionError: on_too_deep, Exception: on_unexpected}
