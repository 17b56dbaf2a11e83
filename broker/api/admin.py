"""Administration: sites at run time, API tokens, the audit log (all admin-only; see ROUTE_ROLES).

Site changes go to Redis, which every API replica and worker reads on each use, so they take
effect everywhere without a restart. A site is validated (``broker.config.validate_site``)
before it is stored, and replaced only with ``If-Match`` naming its current revision, so two
admins cannot overwrite each other. Every change is written to the audit log, redacted."""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from broker.api.openapi_docs import api_problems
from broker.api.problems import ApiError, FieldError
from broker.api.status import ETAG, SiteController, SiteView, _view
from broker.config import ConfigError, Settings, SiteConfig, validate_site
from broker.health import effective
from broker.store.audit import AuditEntry, AuditLog, redact
from broker.store.jobs import now_iso
from broker.store.sites import StoredSite
from broker.store.tokens import TokenRecord, beyond_reach

log = logging.getLogger("superfed.admin")

IfMatch = Annotated[str | None, HeaderParameter(
    name="If-Match", required=False, max_length=200,
    description="the site's current ETag (its revision), as GET /api/v1/sites/{name} gave it")]


# ---- ETags -----------------------------------------------------------------------------------

def etag(revision: int) -> str:
    return f'"{revision}"'


def if_match_ok(header: str, revision: int) -> bool:
    """RFC 9110 If-Match: a list of strong entity tags, or ``*``; weak tags never match."""
    return any(tag.strip() in ("*", etag(revision)) for tag in header.split(","))


def _precondition(if_match: str | None, stored: StoredSite) -> None:
    if not if_match:
        raise ApiError(428, "Precondition required",
                       "send If-Match with the site's current ETag (GET it first) to change it",
                       headers={"ETag": etag(stored.revision)})
    if not if_match_ok(if_match, stored.revision):
        raise ApiError(412, "Precondition failed",
                       f"the site changed since: it is now at revision {stored.revision}; "
                       "GET it again and re-apply your change",
                       headers={"ETag": etag(stored.revision)})


# ---- sites -----------------------------------------------------------------------------------

class SiteConfigView(msgspec.Struct):
    """A site's whole configuration as an admin edits it (the ``auth`` table names only where
    the credentials are; anything secret-looking is redacted all the same)."""

    revision: int
    config: dict[str, Any]


_UNKNOWN_FIELD = re.compile(r"unknown field `(.+?)`")


def _site_problem(exc: ConfigError) -> ApiError:
    errors = []
    for p in exc.problems:
        place, _, message = p.partition(": ")
        field = "body" if place == "site" else place.removeprefix("site.")
        unknown = _UNKNOWN_FIELD.search(message)
        if unknown:  # msgspec places it on the object; name the field itself
            field = unknown.group(1) if field == "body" else f"{field}.{unknown.group(1)}"
            message = "unknown field"
        errors.append(FieldError(field=field, message=message, source="body"))
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return ApiError(422, "Validation failed", detail, errors=errors)


def _validate(raw: dict[str, Any], settings: Settings) -> SiteConfig:
    try:
        # credentials only by the names the operator declared, each bound to its hosts
        return validate_site(raw, allowed_hosts=settings.allowed_site_hosts, credentials=settings.credentials,
                             by_name_only=True)
    except ConfigError as exc:
        raise _site_problem(exc) from None


async def _site_response(request: Request[Any, Any, Any], stored: StoredSite, status: int = 200,
                         headers: dict[str, str] | None = None) -> Response[SiteView]:
    st = request.app.state
    health = effective(await st.health.get(stored.config.name), stored.config, time.time())
    view = _view(stored.config, stored.revision, health)
    return Response(view, status_code=status,
                    headers={"ETag": etag(stored.revision), **(headers or {})})


def _audit(request: Request[TokenRecord, Any, Any]) -> AuditLog:
    st = request.app.state
    return AuditLog(st.redis, st.rkeys, st.settings.api.audit_max_entries)


async def _record(request: Request[TokenRecord, Any, Any], action: str, target: str,
                  before: Any = None, after: Any = None) -> None:
    user = request.user
    await _audit(request).record(user.name, user.id, action, target, before, after)
    log.info("%s %s by token %r", action, target, user.name)


class SiteAdminController(SiteController):
    """The read-only site routes plus the admin ones: one controller per path, since Litestar
    refuses two controllers on one path (each brings its own OPTIONS handler)."""

    path = "/api/v1/sites"
    tags = ["sites"]

    @post("/", operation_id="createSite", status_code=201,
          summary="Add a site (validated; 422 names each bad field; 409 if the name is taken)",
          response_headers=[ETAG, ResponseHeader(name="Location", documentation_only=True, value="",
                                                 description="the site's URL")],
          responses=api_problems(409, 413, 422))
    async def create(self, request: Request[TokenRecord, Any, Any],
                     data: JSONBody[dict[str, Any]]) -> Response[SiteView]:
        site = _validate(data, request.app.state.settings)
        stored = await request.app.state.sites.create(site)
        if stored is None:
            raise ApiError(409, "Conflict", f"a site named {site.name!r} exists; PUT to replace it")
        await _record(request, "site.create", site.name, None, site)
        return await _site_response(request, stored, 201,
                                    {"Location": f"/api/v1/sites/{site.name}"})

    @get("/{name:str}/config", operation_id="getSiteConfig",
         summary="A site's whole configuration with its revision (ETag), for editing",
         response_headers=[ETAG], responses=api_problems(404))
    async def read_config(self, request: Request[TokenRecord, Any, Any],
                          name: FromPath[str]) -> Response[SiteConfigView]:
        stored = await _get(request, name)
        view = SiteConfigView(revision=stored.revision,
                              config=redact(msgspec.to_builtins(stored.config)))
        return Response(view, headers={"ETag": etag(stored.revision)})

    @put("/{name:str}", operation_id="replaceSite", status_code=200,
         summary="Replace a site's configuration (If-Match: its ETag; 428 without, 412 stale)",
         response_headers=[ETAG], responses=api_problems(404, 412, 413, 422, 428))
    async def replace(self, request: Request[TokenRecord, Any, Any], name: FromPath[str],
                      data: JSONBody[dict[str, Any]], if_match: IfMatch = None) -> Response[SiteView]:
        stored = await _get(request, name)
        _precondition(if_match, stored)
        if data.get("name", name) != name:
            raise ApiError(422, "Validation failed", "name: a site cannot be renamed; "
                           "create the new name and delete the old one",
                           errors=[FieldError(field="name", message="must be the name in the path",
                                              source="body")])
        site = _validate({**data, "name": name}, request.app.state.settings)
        status, rev = await request.app.state.sites.replace(site, stored.revision)
        if status == "missing":
            raise ApiError(404, "Not found", f"no site {name!r}")
        if status == "stale":
            raise ApiError(412, "Precondition failed",
                           f"the site changed meanwhile: it is now at revision {rev}",
                           headers={"ETag": etag(rev)})
        await _record(request, "site.replace", name, stored.config, site)
        return await _site_response(request, StoredSite(rev, site))

    @delete("/{name:str}", operation_id="deleteSite", status_code=204,
            summary="Remove a site with no unfinished jobs (409 otherwise)",
            responses=api_problems(404, 409, 412))
    async def remove(self, request: Request[TokenRecord, Any, Any], name: FromPath[str],
                     if_match: IfMatch = None) -> None:
        stored = await _get(request, name)
        if if_match:
            _precondition(if_match, stored)
        status, busy = await request.app.state.sites.delete_if_idle(name)
        if status == "missing":
            raise ApiError(404, "Not found", f"no site {name!r}")
        if status == "busy":
            raise ApiError(409, "Conflict",
                           f"the site {name!r} holds {busy} unfinished job(s); drain it and wait "
                           "for them to finish (or cancel them) before removing it")
        await _record(request, "site.delete", name, stored.config, None)

    @post("/{name:str}/drain", operation_id="drainSite", status_code=200,
          summary="Stop placing new jobs at a site; its running jobs are left alone",
          response_headers=[ETAG], responses=api_problems(404, 409))
    async def drain(self, request: Request[TokenRecord, Any, Any],
                    name: FromPath[str]) -> Response[SiteView]:
        return await _toggle(request, name, "site.drain", draining=True)

    @post("/{name:str}/enable", operation_id="enableSite", status_code=200,
          summary="Resume placing jobs at a site (enabled, not draining)",
          response_headers=[ETAG], responses=api_problems(404, 409))
    async def enable(self, request: Request[TokenRecord, Any, Any],
                     name: FromPath[str]) -> Response[SiteView]:
        return await _toggle(request, name, "site.enable", draining=False, enabled=True)


async def _get(request: Request[Any, Any, Any], name: str) -> StoredSite:
    stored = await request.app.state.sites.get(name)
    if stored is None:
        raise ApiError(404, "Not found", f"no site {name!r}")
    return stored


async def _toggle(request: Request[TokenRecord, Any, Any], name: str, action: str,
                  **changes: bool) -> Response[SiteView]:
    sites = request.app.state.sites
    for _ in range(10):  # compare-and-set; another admin's change in between means try again
        stored = await _get(request, name)
        site = msgspec.structs.replace(stored.config, **changes)
        if site == stored.config:
            return await _site_response(request, stored)  # already so: nothing to change
        status, rev = await sites.replace(site, stored.revision)
        if status == "ok":
            await _record(request, action, name, stored.config, site)
            return await _site_response(request, StoredSite(rev, site))
        if status == "missing":
            raise ApiError(404, "Not found", f"no site {name!r}")
    raise ApiError(409, "Conflict", "the site is being changed by others; try again",
                   headers={"Retry-After": "1"})


# ---- tokens ----------------------------------------------------------------------------------

TokenName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$(?!\n)")]
ProjectName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\s,]+$(?!\n)")]


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: TokenName
    role: Literal["viewer", "submitter", "admin"]
    projects: Annotated[list[ProjectName], msgspec.Meta(min_length=1, max_length=1000)] = (
        msgspec.field(default_factory=lambda: ["*"]))
    expires_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


class TokenView(msgspec.Struct):
    id: str
    name: str
    role: str
    projects: list[str]
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    source: str  # "api" or "config" (a bootstrap token from the config file)


class TokenCreated(msgspec.Struct):
    id: str
    name: str
    role: str
    projects: list[str]
    created_at: str
    expires_at: str | None
    token: str  # the secret: shown this once, kept only as its SHA-256


def _iso(ts: float | None) -> str | None:
    return None if ts is None else now_iso(ts)


def token_view(rec: TokenRecord, last_used: float | None) -> TokenView:
    return TokenView(id=rec.id, name=rec.name, role=rec.role, projects=rec.projects,
                     created_at=now_iso(rec.created_at), expires_at=_iso(rec.expires_at),
                     last_used_at=_iso(last_used), source=rec.source)


class TokenController(Controller):
    path = "/api/v1/tokens"
    tags = ["tokens"]

    @post("/", operation_id="createToken", status_code=201,
          summary="Create an API token; the response shows the token this once",
          responses=api_problems(413, 422))
    async def create(self, request: Request[TokenRecord, Any, Any],
                     data: JSONBody[TokenCreate]) -> Response[TokenCreated]:
        expires = data.expires_at.timestamp() if data.expires_at else None
        if expires is not None and expires <= time.time():
            raise ApiError(422, "Validation failed", "expires_at: must be in the future",
                           errors=[FieldError(field="expires_at", message="must be in the future",
                                              source="body")])
        why = beyond_reach(request.user, data.role, data.projects)
        if why is not None:
            raise ApiError(403, "Forbidden", f"{why}; a token can only be given a role and projects "
                           "its maker has")
        secret, rec = await request.app.state.tokens.create(data.name, data.role, data.projects,
                                                            expires)
        await _record(request, "token.create", rec.id, None, token_view(rec, None))
        body = TokenCreated(id=rec.id, name=rec.name, role=rec.role, projects=rec.projects,
                            created_at=now_iso(rec.created_at), expires_at=_iso(rec.expires_at),
                            token=secret)
        return Response(body, status_code=201, headers={"Cache-Control": "no-store"})

    @get("/", operation_id="listTokens", summary="Every token (never the secret)", responses=api_problems())
    async def list_tokens(self, request: Request[TokenRecord, Any, Any]) -> list[TokenView]:
        return [token_view(rec, used) for rec, used in await request.app.state.tokens.all()]

    @delete("/{token_id:str}", operation_id="revokeToken", status_code=204,
            summary="Revoke a token: it stops working at once on every replica "
                    "(409: the last admin token for every project)",
            responses=api_problems(404, 409))
    async def revoke(self, request: Request[TokenRecord, Any, Any], token_id: FromPath[str]) -> None:
        status, rec = await request.app.state.tokens.revoke(token_id, actor=request.user)
        if status == "missing" or rec is None:
            raise ApiError(404, "Not found", f"no token {token_id!r}")
        if status == "forbidden":
            raise ApiError(403, "Forbidden", f"{beyond_reach(request.user, rec.role, rec.projects)}; "
                           f"it cannot revoke the token {rec.name!r}")
        if status == "last-admin":
            raise ApiError(409, "Conflict", f"the token {rec.name!r} is the last admin token for every "
                           "project; revoking it would leave nobody able to administer the broker. "
                           "Create another admin token first")
        await _record(request, "token.revoke", rec.id, token_view(rec, None), None)


# ---- audit -----------------------------------------------------------------------------------

class AuditView(msgspec.Struct):
    at: str
    actor: str
    actor_id: str
    action: str
    target: str
    before: Any
    after: Any


class AuditPage(msgspec.Struct):
    items: list[AuditView]
    total: int


def audit_view(e: AuditEntry) -> AuditView:
    return AuditView(at=now_iso(e.at), actor=e.actor, actor_id=e.actor_id, action=e.action,
                     target=e.target, before=e.before, after=e.after)


class AuditController(Controller):
    path = "/api/v1/audit"
    tags = ["audit"]

    @get("/", operation_id="listAudit", summary="Who changed what and when, newest first",
         responses=api_problems())
    async def list_audit(
        self,
        request: Request[TokenRecord, Any, Any],
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> AuditPage:
        audit = _audit(request)
        entries = await audit.recent(limit, offset)
        return AuditPage(items=[audit_view(e) for e in entries], total=await audit.count())


ADMIN_CONTROLLERS = [SiteAdminController, TokenController, AuditController]
