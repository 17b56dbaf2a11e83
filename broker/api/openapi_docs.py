"""What the OpenAPI schema says about errors and a few bodies Litestar cannot infer.

Every error the API sends is an RFC 9457 problem document (broker/api/problems.py); this
module declares them, in one table, on every operation of the generated schema, so that the
schema tells clients (and Schemathesis) the truth:

- every ``/api/v1`` operation: 400 (a bad parameter), 401, 403, 429 (rate limit) and 503
  (Redis or a facility unreachable); with a request body also 413 and 422; with a path
  parameter also 404; plus ``EXTRA`` per operation (409, 412, 428, 502 ...).
- bodies Litestar sees only as bytes or a dict: the job a submission returns, the site config
  an admin sends, the event stream.
- the JobSpec as msgspec describes it, with every limit and pattern of adapters/validation.py.

It runs once, on the schema object Litestar caches, when the app is created."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType

from adapters.psij import JobSpec
from broker.config import SiteConfig

PROBLEM_MEDIA = "application/problem+json"

TITLES: dict[int, str] = {
    400: "Bad request: a parameter or header is malformed",
    401: "No token, or an unknown, revoked or expired one",
    403: "The token's role or projects do not allow this",
    404: "No such resource (or not one this token may see)",
    409: "Conflict with the current state",
    412: "If-Match names a revision that is no longer current",
    413: "The body (or the file) is larger than the configured limit",
    422: "The body is invalid; `errors` names each bad field",
    428: "If-Match is required",
    429: "Rate limit: wait `Retry-After` seconds",
    502: "The facility refused the broker's credentials",
    503: "Redis or the facility is not reachable now; retry after `Retry-After` seconds",
}

ALL_API = (400, 401, 403, 429, 503)
WITH_BODY = (413, 422)
WITH_PATH_PARAM = (404,)
EXTRA: dict[str, tuple[int, ...]] = {
    "createJob": (409,),  # an Idempotency-Key still being handled
    "createSite": (409,),
    "replaceSite": (412, 428),
    "deleteSite": (409, 412),
    "drainSite": (409,),
    "enableSite": (409,),
    "listFiles": (502,),
    "readFile": (413, 502),
    "writeFile": (413, 502),
    "revokeToken": (409,),  # the last admin token for every project
}
# operations whose 2xx answers carry the site's ETag
ETAG_OPERATIONS = ("getSite", "getSiteConfig", "createSite", "replaceSite", "drainSite",
                   "enableSite")
SITE_BODY_OPERATIONS = ("createSite", "replaceSite")

_METHODS = ("get", "put", "post", "delete", "patch")


def _problem_schemas() -> dict[str, Schema]:
    string = Schema(type=OpenAPIType.STRING)
    field_error = Schema(
        type=OpenAPIType.OBJECT,
        required=["field", "message"],
        properties={"field": string, "message": string, "source": string},
        description="One offending field of a request",
    )
    problem = Schema(
        type=OpenAPIType.OBJECT,
        required=["type", "title", "status", "detail"],
        properties={
            "type": string,
            "title": string,
            "status": Schema(type=OpenAPIType.INTEGER),
            "detail": string,
            "instance": string,
            "errors": Schema(type=OpenAPIType.ARRAY,
                             items=Reference(ref="#/components/schemas/FieldError")),
        },
        description="RFC 9457 problem details",
    )
    return {"Problem": problem, "FieldError": field_error}


def _header(description: str) -> OpenAPIHeader:
    return OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING), description=description,
                         required=False)


def problem_response(status: int) -> OpenAPIResponse:
    headers: dict[str, Any] = {}
    if status in (429, 503, 409):
        headers["Retry-After"] = _header("seconds to wait before trying again")
    if status == 401:
        headers["WWW-Authenticate"] = _header("Bearer")
    if status in (412, 428):
        headers["ETag"] = _header("the site's current revision")
    return OpenAPIResponse(
        description=TITLES[status],
        headers=headers or None,
        content={PROBLEM_MEDIA: OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Problem"))},
    )


def _statuses(path: str, op: Operation) -> list[int]:
    codes = list(ALL_API)
    if op.request_body is not None:
        codes += WITH_BODY
    if "{" in path:
        codes += WITH_PATH_PARAM
    codes += EXTRA.get(op.operation_id or "", ())
    return sorted(set(codes))


def _site_config_schema(components: dict[str, Any]) -> Reference:
    """SiteConfig's JSON schema (msgspec's, the input form) into the components; a name
    Litestar already uses for its own output form (SiteLimits) gets an "Input" suffix."""
    _, defs = msgspec.json.schema_components([SiteConfig], ref_template="#/components/schemas/{name}")
    rename = {n: (f"{n}Input" if n in components else n) for n in defs}
    text = msgspec.json.encode(defs).decode()
    for old, new in rename.items():
        text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
    fixed = msgspec.json.decode(text)
    for old, new in rename.items():
        components[new] = fixed[old]
    return Reference(ref=f"#/components/schemas/{rename['SiteConfig']}")


def _job_spec_schemas(components: dict[str, Any]) -> None:
    """The JobSpec's schemas as msgspec writes them: Litestar's drop the constraints on list
    items and dict keys and values (argument sizes, environment names, attribute limits)."""
    _, defs = msgspec.json.schema_components([JobSpec], ref_template="#/components/schemas/{name}")
    for name in ("JobSpec", "JobAttributes", "ResourceSpec"):
        components[name] = defs[name]


def document(openapi: OpenAPI) -> OpenAPI:
    """Declare problem responses and fix the bodies Litestar cannot infer (in place)."""
    assert openapi.components is not None and not isinstance(openapi.components, list)
    schemas = openapi.components.schemas if openapi.components.schemas is not None else {}
    openapi.components.schemas = schemas
    schemas.update(_problem_schemas())
    site_ref = _site_config_schema(schemas)  # type: ignore[arg-type]
    _job_spec_schemas(schemas)  # type: ignore[arg-type]
    for path, item in (openapi.paths or {}).items():
        for method in _METHODS:
            op: Operation | None = getattr(item, method, None)
            if op is None:
                continue
            responses = op.responses if op.responses is not None else {}
            op.responses = responses
            if path.startswith("/api/"):
                for status in _statuses(path, op):
                    responses[str(status)] = problem_response(status)
            else:
                op.security = []  # operations endpoints need no token (the app excludes them from auth)
                if "400" in responses:
                    responses["400"] = problem_response(400)
                if path == "/metrics":  # unless [api] metrics_token_sha256 asks for its own token
                    responses["401"] = problem_response(401)
            _fix_bodies(op, responses, site_ref)
    return openapi


def _fix_bodies(op: Operation, responses: dict[str, Any], site_ref: Reference) -> None:
    oid = op.operation_id or ""
    if oid == "createJob":
        responses["202"] = OpenAPIResponse(
            description="Accepted: the job, to be placed",
            headers={"Location": _header("the job's URL"),
                     "Idempotent-Replayed": _header("true when this answers a repeat")},
            content={"application/json": OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Job"))},
        )
    if oid == "streamStatusEvents":
        responses["200"] = OpenAPIResponse(
            description="Server-Sent Events: `health` events, one per state change",
            content={"text/event-stream": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))},
        )
    if oid in SITE_BODY_OPERATIONS:
        op.request_body = RequestBody(
            required=True,
            description="the site's configuration, as a [[sites]] table of the config file has it",
            content={"application/json": OpenAPIMediaType(schema=site_ref)},
        )
    if oid in ETAG_OPERATIONS:
        for code, resp in responses.items():
            if code.startswith("2") and isinstance(resp, OpenAPIResponse):
                resp.headers = {**(resp.headers or {}),
                                "ETag": _header("the site's revision, for If-Match")}
