"""Files and projects, through the site's adapter."""

from __future__ import annotations

import posixpath
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, put
from litestar.params import FromPath, QueryParameter

from adapters.errors import AdapterError, AuthFailed, NotFound
from adapters.types import FileEntry
from broker.api.auth import require_project
from broker.api.openapi_docs import api_problems
from broker.api.problems import ApiError
from broker.config import SiteConfig
from broker.sanitise import sanitise
from broker.store.audit import AuditLog
from broker.store.tokens import TokenRecord

PathParam = Annotated[
    str, QueryParameter(name="path", min_length=1, max_length=4096, description="absolute path at the site")
]
ProjectParam = Annotated[
    str,
    QueryParameter(name="project", pattern=r"^[A-Za-z0-9_.-]{1,64}$(?!\n)",
                   description="the broker project the request acts for: only its file roots are reachable"),
]


class ProjectSite(msgspec.Struct):
    site: str
    allocated: float
    used: float
    unit: str  # node_hours, bytes, inodes, or "unknown" (the facility's own unit: see note)
    note: str | None = None  # why the unit is unknown, in the adapter's words


class ProjectUsage(msgspec.Struct):
    project: str
    sites: list[ProjectSite]


def adapter_problem(site: str, exc: AdapterError) -> ApiError:
    """The facility's error as its category and a short sanitised text (never verbatim)."""
    text = sanitise(exc.message)
    if isinstance(exc, NotFound):
        return ApiError(404, "Not found", f"{site}: not found: {text}")
    if isinstance(exc, AuthFailed):
        return ApiError(502, "Bad gateway", f"{site} refused the broker's credentials (authentication): {text}")
    if exc.retriable:
        return ApiError(503, "Service unavailable", f"{site} is not answering properly (retriable): {text}",
                        headers={"Retry-After": "5"})
    return ApiError(400, "Bad request", f"{site} refused (permanent): {text}")


def roots_for(site: SiteConfig, project: str) -> list[str]:
    """The directories ``project`` may reach at ``site``: its own and those shared by all ("*")."""
    return [*site.file_roots.get(project, ()), *site.file_roots.get("*", ())]


def _check_path(path: str, site: SiteConfig, project: str) -> str:
    """An absolute path without '..', normalised, under one of the project's ``file_roots`` at
    the site (none configured = no file access for that project there)."""
    if not path.startswith("/"):
        raise ApiError(400, "Invalid request", "path must be absolute (start with /)")
    if any(part == ".." for part in path.split("/")) or "\x00" in path:
        raise ApiError(400, "Invalid request", "path must not contain '..' (or NUL)")
    path = posixpath.normpath(path)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")  # POSIX keeps a leading '//'; the facility would not
    roots = roots_for(site, project)
    if not roots:
        raise ApiError(403, "Forbidden", f"the site {site.name!r} allows project {project!r} no file access "
                       "(no file_roots for it)")
    if not any(root == "/" or path == root or path.startswith(root + "/") for root in roots):
        raise ApiError(403, "Forbidden", f"the path is outside project {project!r}'s file roots at "
                       f"{site.name}: {', '.join(roots)}")
    return path


async def _scoped(request: Request[TokenRecord, Any, Any], name: str, project: str) -> Any:
    require_project(request.user, project)  # 403 before anything about the site is revealed
    return await _adapter(request, name)


async def _adapter(request: Request[Any, Any, Any], name: str) -> Any:
    found = await request.app.state.adapters.by_name(name)
    if found is None:
        raise ApiError(404, "Not found", f"no site {name!r}")
    return found


class FileController(Controller):
    path = "/api/v1/sites/{name:str}/files"
    tags = ["files"]

    @get("/", operation_id="listFiles", summary="A directory listing at a site", responses=api_problems(404, 502))
    async def ls(
        self, request: Request[TokenRecord, Any, Any], name: FromPath[str], path: PathParam, project: ProjectParam
    ) -> list[FileEntry]:
        site, adapter = await _scoped(request, name, project)
        try:
            return await adapter.list_dir(_check_path(path, site, project), site.systems[0])
        except AdapterError as exc:
            raise adapter_problem(name, exc) from None

    @get("/content", operation_id="readFile", summary="A small file's bytes", media_type="application/octet-stream",
         responses=api_problems(404, 413, 502))
    async def read(
        self, request: Request[TokenRecord, Any, Any], name: FromPath[str], path: PathParam, project: ProjectParam
    ) -> Response[bytes]:
        site, adapter = await _scoped(request, name, project)
        limit = request.app.state.settings.api.max_file_bytes
        try:
            data = await adapter.read_file(_check_path(path, site, project), site.systems[0], limit)
        except AdapterError as exc:
            raise adapter_problem(name, exc) from None
        if len(data) > limit:
            raise ApiError(413, "Payload too large", f"the file is larger than the {limit}-byte limit")
        return Response(data, media_type="application/octet-stream")

    @put("/content", operation_id="writeFile", status_code=204, summary="Upload a small file",
         responses=api_problems(404, 413, 502))
    async def write(
        self, request: Request[TokenRecord, Any, Any], name: FromPath[str], path: PathParam, project: ProjectParam
    ) -> None:
        site, adapter = await _scoped(request, name, project)
        limit = request.app.state.settings.api.max_file_bytes
        body = await request.body()
        if len(body) > limit:
            raise ApiError(413, "Payload too large", f"files up to {limit} bytes only")
        checked = _check_path(path, site, project)
        try:
            await adapter.write_file(checked, body, site.systems[0])
        except AdapterError as exc:
            raise adapter_problem(name, exc) from None
        st = request.app.state
        user = request.user
        await AuditLog(st.redis, st.rkeys, st.settings.api.audit_max_entries).record(
            user.name, user.id, "file.write", f"{name}:{checked}", None,
            {"site": name, "path": checked, "project": project, "bytes": len(body)})


class ProjectController(Controller):
    path = "/api/v1/projects"
    tags = ["projects"]

    @get("/", operation_id="listProjects", summary="Allocation and use per project and site",
         responses=api_problems())
    async def projects(self, request: Request[Any, Any, Any]) -> list[ProjectUsage]:
        token = request.user
        st = request.app.state
        usage: dict[str, list[ProjectSite]] = {}
        for stored in await st.sites.all():
            site = stored.config
            try:
                adapter = await st.adapters.get(site, stored.revision)
                allocations = await adapter.allocations()
            except AdapterError:
                continue  # an unreachable site simply contributes nothing now
            reverse = {acct: proj for proj in site.accounts for acct in site.accounts_allowed(proj)}
            for a in allocations:
                project = reverse.get(a.project, a.project)
                if token.may_see(project):
                    usage.setdefault(project, []).append(
                        ProjectSite(site=site.name, allocated=a.allocated, used=a.used, unit=a.unit, note=a.note)
                    )
        return [ProjectUsage(project=p, sites=s) for p, s in sorted(usage.items())]
