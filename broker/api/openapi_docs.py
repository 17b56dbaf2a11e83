"""What the OpenAPI schema says about errors, and what no route can declare.

Every error is an RFC 9457 problem document (broker/api/problems.py). Each route declares the
ones it may answer with ``responses=api_problems(...)``: those every /api/v1 route may answer
(``EVERY_API_ROUTE``) plus its own (404 with a path parameter, 413 and 422 with a body, 409,
412, 428, 502 where it raises them). Success bodies and headers are declared at the routes too
(typed returns, ``response_headers=``).

``document`` adds, once, to the schema Litestar caches when the app is created, what the routes
cannot declare:

- the headers of problem answers (Retry-After, WWW-Authenticate, ETag): ``ResponseSpec`` has no
  headers (litestar 2.25);
- the JobSpec and its parts as msgspec describes them: Litestar's schemas drop the constraints on
  list items and dict keys and values (argument sizes, environment names, attribute limits);
- the site configuration the admin routes take: they read the body as a dict, so that
  ``validate_site`` can name every bad field at once, and Litestar sees no type;
- the body of ``createJobs`` (``JobBatch``): the route reads it itself, so that a bad job is
  that job's answer rather than the batch's."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Reference,
    RequestBody,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType

from adapters.psij import JobSpec
from broker.api.problems import PROBLEM, Problem
from broker.config import SiteConfig
from broker.schemas import JobBatch

DESCRIPTIONS: dict[int, str] = {
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
EVERY_API_ROUTE = (400, 401, 403, 429, 503)  # a bad parameter, the token, the rate limit, Redis away
_WAIT = "seconds to wait before trying again"
HEADERS: dict[int, dict[str, str]] = {  # what those answers carry besides the document
    401: {"WWW-Authenticate": "Bearer"},
    409: {"Retry-After": _WAIT},
    412: {"ETag": "the site's current revision"},
    428: {"ETag": "the site's current revision"},
    429: {"Retry-After": _WAIT},
    503: {"Retry-After": _WAIT},
}
SITE_BODY_OPERATIONS = ("createSite", "replaceSite")
BATCH_OPERATION = "createJobs"


def problem_responses(*codes: int) -> dict[int, ResponseSpec]:
    """Problem documents with these statuses, for a route's ``responses=``."""
    return {code: ResponseSpec(Problem, description=DESCRIPTIONS[code], media_type=PROBLEM, generate_examples=False)
            for code in sorted(set(codes))}


def api_problems(*codes: int) -> dict[int, ResponseSpec]:
    """An /api/v1 route's problem documents: those every such route may answer, and ``codes``."""
    return problem_responses(*EVERY_API_ROUTE, *codes)


def document(openapi: OpenAPI) -> OpenAPI:
    """Add what the routes cannot declare (above) to the schema, in place."""
    assert openapi.components is not None and not isinstance(openapi.components, list)
    schemas: dict[str, Any] = openapi.components.schemas or {}
    openapi.components.schemas = schemas
    site = _site_config_schema(schemas)
    _, jobspec = msgspec.json.schema_components([JobSpec], ref_template="#/components/schemas/{name}")
    schemas.update({name: jobspec[name] for name in ("JobSpec", "JobAttributes", "ResourceSpec")})
    batch = _batch_schema(schemas)
    for item in (openapi.paths or {}).values():
        for op in (item.get, item.put, item.post, item.delete, item.patch):
            if op is None:
                continue
            for code, resp in (op.responses or {}).items():
                if isinstance(resp, OpenAPIResponse) and PROBLEM in (resp.content or {}) and int(code) in HEADERS:
                    resp.headers = {name: OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING), description=text)
                                    for name, text in HEADERS[int(code)].items()}
            if op.operation_id in SITE_BODY_OPERATIONS and op.request_body is not None:
                assert not isinstance(op.request_body, Reference)
                op.request_body.description = "the site's configuration, as a [[sites]] table of the config file has it"
                op.request_body.content = {"application/json": OpenAPIMediaType(schema=site)}
            if op.operation_id == BATCH_OPERATION:
                op.request_body = RequestBody(
                    required=True, description="the jobs, each a submission's body and its own idempotency_key",
                    content={"application/json": OpenAPIMediaType(schema=batch)})
    return openapi


def _batch_schema(components: dict[str, Any]) -> Reference:
    """JobBatch (msgspec's schema) into the components; the JobSpec parts are the ones above."""
    _, defs = msgspec.json.schema_components([JobBatch], ref_template="#/components/schemas/{name}")
    for name, schema in defs.items():
        components.setdefault(name, schema)
    return Reference(ref="#/components/schemas/JobBatch")


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
