"""DOE IRI Facility API v1, as ALCF runs it (``https://api.alcf.anl.gov/api/v1``).

The wire is JSON: a PSI/J JobSpec to submit, ``Job``/``JobStatus`` back, RFC 9457 problem
details on errors, and filesystem operations that answer with a task id to poll.  Behind
ALCF's API is PBS Pro: ``meta_data.job_state`` carries the PBS letter, which we keep as the
native state; qsub's refusals come back as the problem's ``detail`` and are surfaced as is.

Layout (psij-python style): tables, then wire structs, then pure build/parse functions,
then the thin adapter class that does the I/O.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from adapters.base import AdapterBase
from adapters.errors import (
    AdapterError,
    AuthFailed,
    ComponentDown,
    NotFound,
    SiteOverloaded,
    SiteRejected,
)
from adapters.http import SiteHTTP, decode_json, default_message, parse_retry_after
from adapters.psij import JobSpec
from adapters.secrets import Secret, load_secret
from adapters.tags import name_with_tag, tag_from_name
from adapters.tokens import TokenCache
from adapters.types import (
    Allocation,
    ComponentHealth,
    FileEntry,
    HealthState,
    Incident,
    JobState,
    JobStatus,
    SiteHealth,
    SubmitReceipt,
    SubmitRequest,
    overall_state,
)

log = logging.getLogger("superfed.adapters.iri")

# -- tables ---------------------------------------------------------------------------------
# IRI JobState (spec: components.schemas.JobState) -> PSI/J state.  IRI took PSI/J's states,
# so this is the identity up to case; PBS's letters stay in native_state.
STATE_MAP: dict[str, JobState] = {
    "new": "NEW",
    "queued": "QUEUED",
    "held": "HELD",
    "active": "ACTIVE",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "canceled": "CANCELED",
}
# IRI resource Status (spec: components.schemas.Status) -> health; anything else is unknown.
HEALTH_MAP: dict[str, HealthState] = {
    "up": "up",
    "degraded": "degraded",
    "down": "down",
    "unknown": "unknown",
}
# IRI TaskStatus values after which a task's result no longer changes.
TASK_FINAL = frozenset({"completed", "failed", "canceled"})
# IRI File.type (reference implementation: `ls` entries) -> FileEntry.type
FILE_TYPES: dict[str, str] = {
    "file": "file",
    "directory": "directory",
    "symlink": "link",
    "link": "link",
}
# The broker's tag ends the job name (adapters.tags): PBS keeps Job_Name, and the IRI API
# echoes it in the job spec and ALCF in meta_data.Job_Name.
LIST_LIMIT = 1000  # the spec's maximum page size for POST /compute/status
UNAVAILABLE_SLUG = "resource-unavailable"  # the problem type of a resource that is down


def psij_state(iri_state: str | None) -> JobState | None:
    return STATE_MAP.get((iri_state or "").lower())


def health_state(status: str | None) -> HealthState:
    return HEALTH_MAP.get((status or "").lower(), "unknown")


# -- wire structs (lenient: facilities add fields) -----------------------------------------
class WireResource(msgspec.Struct):
    id: str
    name: str | None = None
    resource_type: str = "unknown"
    current_status: str | None = None
    description: str | None = None


class WireIncident(msgspec.Struct):
    id: str
    name: str | None = None
    description: str | None = None
    status: str | None = None
    type: str | None = None
    resolution: str | None = None
    start: str | None = None
    end: str | None = None
    resource_uris: list[str] = []


class WireJobStatus(msgspec.Struct):
    state: str
    time: float | None = None
    message: str | None = None
    exit_code: int | None = None
    meta_data: dict[str, Any] | None = None


class WireJob(msgspec.Struct):
    id: str
    status: WireJobStatus | None = None
    job_spec: dict[str, Any] | None = None


class WireTaskSubmit(msgspec.Struct):
    task_id: str


class WireTask(msgspec.Struct):
    id: str
    status: str = "pending"
    result: dict[str, Any] | None = None


class WireFile(msgspec.Struct):
    name: str
    type: str = "file"
    size: str | int = 0
    last_modified: str | None = None
    permissions: str | None = None


class WireStat(msgspec.Struct):
    size: int


class WireProject(msgspec.Struct):
    id: str
    name: str | None = None


class WireEntry(msgspec.Struct):
    allocation: float
    usage: float
    unit: str


class WireAllocation(msgspec.Struct):
    id: str
    entries: list[WireEntry] = []


class WireProblem(msgspec.Struct):
    type: str = ""
    detail: str | None = None
    title: str | None = None


# -- pure build/parse -----------------------------------------------------------------------
def job_name(spec: JobSpec, tag: str) -> str:
    """The spec's name made PBS-safe (printable, no blanks), with the tag as suffix."""
    return name_with_tag(spec.name, tag, max_base=180)


def build_job(req: SubmitRequest) -> dict[str, Any]:
    """The PSI/J JobSpec body for ``POST /compute/job/{resource}``.  ``account`` falls back
    to the broker's project; ``custom_attributes`` (ALCF's ``filesystems``) pass through."""
    spec = req.spec
    r, a = spec.resources, spec.attributes
    body: dict[str, Any] = {
        "executable": spec.executable,
        "arguments": list(spec.arguments),
        "name": job_name(spec, req.tag),
        "inherit_environment": spec.inherit_environment,
    }
    for key in ("directory", "stdout_path", "stderr_path"):
        if getattr(spec, key):
            body[key] = getattr(spec, key)
    if spec.environment:
        body["environment"] = dict(spec.environment)
    resources: dict[str, Any] = {"exclusive_node_use": r.exclusive_node_use}
    for key in (
        "node_count",
        "process_count",
        "processes_per_node",
        "cpu_cores_per_process",
        "memory",
    ):
        if getattr(r, key):
            resources[key] = getattr(r, key)
    if r.gpu_cores_per_process:  # the spec wants >= 1; PSI/J's 0 means "none"
        resources["gpu_cores_per_process"] = r.gpu_cores_per_process
    body["resources"] = resources
    attributes: dict[str, Any] = {"account": a.account or req.project}
    for key in ("duration", "queue_name", "reservation_id"):
        if getattr(a, key):
            attributes[key] = getattr(a, key)
    if a.custom_attributes:
        attributes["custom_attributes"] = dict(a.custom_attributes)
    body["attributes"] = attributes
    return body


def parse_status(job: WireJob) -> JobStatus | None:
    """A facility job as the broker sees it, or None for a state outside the spec."""
    st = job.status
    state = psij_state(st.state if st else None)
    if st is None or state is None:
        log.warning("IRI job %s has an unknown state %r", job.id, st.state if st else None)
        return None
    meta = st.meta_data or {}
    name = meta.get("Job_Name") or (job.job_spec or {}).get("name")
    native = meta.get("job_state")
    return JobStatus(
        native_id=job.id,
        state=state,
        native_state=str(native) if native else st.state,
        exit_code=st.exit_code,
        message=st.message,
        tag=tag_from_name(name if isinstance(name, str) else None),
    )


def _worst(states: list[HealthState]) -> HealthState:
    order = {"down": 0, "unknown": 1, "degraded": 2, "up": 3}
    return min(states, key=order.__getitem__, default="unknown")


def parse_health(
    resources: list[WireResource], incidents: list[WireIncident], systems: Sequence[str]
) -> SiteHealth:
    """Our compute systems' resources make the ``compute`` component, storage resources
    ``filesystem``; every other resource is a component of its own name."""
    groups: dict[str, list[WireResource]] = {}
    for res in resources:
        if res.resource_type == "compute":
            if res.name in systems:
                groups.setdefault("compute", []).append(res)
        elif res.resource_type == "storage":
            groups.setdefault("filesystem", []).append(res)
        else:
            groups.setdefault(res.name or res.id, []).append(res)
    components = [
        ComponentHealth(
            name=name,
            state=_worst([health_state(r.current_status) for r in members]),
            detail=", ".join(f"{r.name}: {r.current_status or 'unknown'}" for r in members),
        )
        for name, members in groups.items()
    ]
    if "compute" not in groups:
        components.append(
            ComponentHealth("compute", "unknown", f"no compute resource named {', '.join(systems)}")
        )
    ids = {
        r.id: (
            "compute"
            if r.resource_type == "compute"
            else "filesystem"
            if r.resource_type == "storage"
            else r.name
        )
        for r in resources
    }
    open_incidents = [
        Incident(
            id=i.id,
            summary=i.name or i.description or i.id,
            component=next(
                (ids[u.rsplit("/", 1)[-1]] for u in i.resource_uris if u.rsplit("/", 1)[-1] in ids),
                None,
            ),
            kind=i.type,
            status=i.resolution or i.status,
            start=i.start,
            end=i.end,
        )
        for i in incidents
        if (i.resolution or "unresolved") in ("unresolved", "pending", "extended")
    ]
    return SiteHealth(
        state=overall_state(components), components=components, incidents=open_incidents
    )


def file_entry(f: WireFile) -> FileEntry:
    try:
        size = int(f.size)
    except ValueError:
        size = 0
    kind = FILE_TYPES.get(f.type, "other")
    return FileEntry(
        name=f.name,
        type=kind,
        size=size,
        mtime=f.last_modified,  # type: ignore[arg-type]
        permissions=f.permissions,
    )


def task_error(task: WireTask, path: str, site: str) -> AdapterError:
    result = task.result or {}
    text = str(result.get("output") or result.get("error") or f"task {task.status}")
    if result.get("status_code") == 404 or "No such file or directory" in text:
        return NotFound(f"{path}: {text}", site=site, status=404)
    return SiteRejected(text, site=site, status=result.get("status_code"))


def filesystem_name(path: str) -> str:
    """ALCF filesystem resource of a path: ``/eagle/...`` and ``/lus/eagle/...`` -> eagle."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["lus"] and len(parts) > 1:
        return parts[1]
    return parts[0] if parts else ""


# -- the adapter ----------------------------------------------------------------------------
class Auth(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A bearer token (ALCF: a Globus access token) read from a file or a variable.  The file
    is read again on a 401, so a token refreshed on disk (e.g. by ALCF's helper script) is
    picked up without a restart."""

    token_file: str | None = None
    token_env: str | None = None

    def __post_init__(self) -> None:
        if bool(self.token_file) == bool(self.token_env):
            raise ValueError("set exactly one of token_file or token_env")


class IriAdapter(AdapterBase):
    kind = "iri"
    Auth = Auth
    task_timeout = 30.0  # seconds a filesystem task may take before we give up

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        auth: Auth = self.auth  # type: ignore[assignment]

        async def fetch() -> tuple[Secret, float | None]:
            return load_secret(
                file=auth.token_file, env=auth.token_env, what="IRI bearer token"
            ), None

        self.tokens = TokenCache(fetch, margin=0)
        self.http = SiteHTTP(
            self.name,
            self.client,
            tokens=self.tokens,
            settings=self.http_settings,
            message_of=default_message,
        )
        self._resources: dict[str, WireResource] = {}

    # -- plumbing -------------------------------------------------------------------------
    async def _call(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            return await self.http.request(method, f"/api/v1{url}", **kw)
        except AuthFailed as exc:
            if exc.status == 401:
                raise AuthFailed(
                    f"bearer token refused: expired or revoked ({exc.message})",
                    site=self.name,
                    status=401,
                ) from None
            raise

    async def _load_resources(self) -> list[WireResource]:
        resp = await self._call("GET", "/status/resources", auth=False, params={"limit": 1000})
        found = decode_json(resp, self.name, list[WireResource])
        self._resources = {r.name: r for r in found if r.name}
        return found

    async def _resource_id(self, name: str, kind: str) -> str:
        res = self._resources.get(name)
        if res is None:
            await self._load_resources()
            res = self._resources.get(name)
        if res is None or res.resource_type != kind:
            raise NotFound(f"no {kind} resource named {name!r} at this facility", site=self.name)
        return res.id

    async def _compute_id(self, system: str | None) -> str:
        return await self._resource_id(self.system_or_default(system), "compute")

    async def _fs_id(self, path: str) -> str:
        return await self._resource_id(filesystem_name(path), "storage")

    def _unavailable(self, resp: httpx.Response) -> AdapterError:
        try:
            problem = msgspec.json.decode(resp.content, type=WireProblem)
        except msgspec.DecodeError:
            problem = WireProblem()
        detail = problem.detail or problem.title or "service unavailable"
        if problem.type.endswith(UNAVAILABLE_SLUG):
            return ComponentDown(detail, site=self.name, status=resp.status_code)
        return SiteOverloaded(
            f"HTTP {resp.status_code}: {detail}",
            site=self.name,
            status=resp.status_code,
            retry_after=parse_retry_after(resp.headers.get("retry-after")),
        )

    # -- health ---------------------------------------------------------------------------
    async def health(self) -> SiteHealth:
        resources = await self._load_resources()
        resp = await self._call(
            "GET",
            "/status/incidents",
            auth=False,
            params={"resolution": "unresolved", "limit": 1000},
        )
        incidents = decode_json(resp, self.name, list[WireIncident])
        return parse_health(resources, incidents, self.systems)

    # -- jobs -----------------------------------------------------------------------------
    async def submit(self, req: SubmitRequest) -> SubmitReceipt:
        system = self.system_or_default(req.system)
        rid = await self._compute_id(system)
        resp = await self._call("POST", f"/compute/job/{rid}", json=build_job(req), ok=(503,))
        if resp.status_code == 503:
            raise self._unavailable(resp)
        job = decode_json(resp, self.name, WireJob)
        return SubmitReceipt(native_id=job.id, system=system)

    async def _list(
        self, rid: str, filters: dict[str, Any] | None, offset: int = 0, include_spec: bool = False
    ) -> list[WireJob]:
        params = {
            "historical": "true",
            "limit": LIST_LIMIT,
            "offset": offset,
            "include_spec": "true" if include_spec else "false",
        }
        resp = await self._call(
            "POST", f"/compute/status/{rid}", params=params, json=filters, idempotent=True
        )
        return decode_json(resp, self.name, list[WireJob])

    async def find_by_tag(self, tag: str, system: str) -> SubmitReceipt | None:
        system = self.system_or_default(system)
        rid = await self._compute_id(system)
        offset = 0
        while True:
            page = await self._list(rid, None, offset, include_spec=True)
            for job in page:
                st = parse_status(job)
                if st is not None and st.tag == tag:
                    return SubmitReceipt(native_id=job.id, system=system)
            if len(page) < LIST_LIMIT:
                return None
            offset += len(page)

    async def statuses(self, native_ids: Sequence[str], system: str) -> dict[str, JobStatus]:
        rid = await self._compute_id(system)
        wanted = list(dict.fromkeys(native_ids))
        out: dict[str, JobStatus] = {}
        for i in range(0, len(wanted), LIST_LIMIT):
            for job in await self._list(rid, {"job_ids": wanted[i : i + LIST_LIMIT]}):
                st = parse_status(job)
                if st is not None:
                    out[job.id] = st
        return out

    async def cancel(self, native_id: str, system: str) -> None:
        rid = await self._compute_id(system)
        # 409: PBS says the job has finished already, which is what we wanted
        await self._call("DELETE", f"/compute/cancel/{rid}/{native_id}", ok=(409,))

    # -- files ----------------------------------------------------------------------------
    async def _task(self, method: str, op: str, path: str, **kw: Any) -> Any:
        """Start a filesystem task and poll it to its result's ``output``."""
        rid = await self._fs_id(path)
        resp = await self._call(method, f"/filesystem/{op}/{rid}", ok=(503,), **kw)
        if resp.status_code == 503:
            raise self._unavailable(resp)
        task_id = decode_json(resp, self.name, WireTaskSubmit).task_id
        deadline = time.monotonic() + self.task_timeout
        delay = 0.02
        while True:
            task = decode_json(await self._call("GET", f"/task/{task_id}"), self.name, WireTask)
            if task.status in TASK_FINAL:
                break
            if time.monotonic() > deadline:
                raise SiteOverloaded(
                    f"task {task_id} ({op} {path}) not done after {self.task_timeout:.0f}s",
                    site=self.name,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        if task.status != "completed":
            raise task_error(task, path, self.name)
        return (task.result or {}).get("output"), task.result or {}

    async def list_dir(self, path: str, system: str) -> list[FileEntry]:
        output, _ = await self._task("GET", "ls", path, params={"path": path, "showHidden": "true"})
        try:
            files = msgspec.convert(output, list[WireFile])
        except msgspec.ValidationError as exc:
            raise SiteRejected(f"ls {path}: unexpected result ({exc})", site=self.name) from None
        return [file_entry(f) for f in files]

    async def read_file(self, path: str, system: str, max_bytes: int) -> bytes:
        output, _ = await self._task("GET", "stat", path, params={"path": path})
        size = msgspec.convert(output, WireStat).size if isinstance(output, dict) else 0
        if size > max_bytes:
            raise SiteRejected(
                f"{path} is {size} bytes, over the limit of {max_bytes}", site=self.name
            )
        output, result = await self._task("GET", "download", path, params={"path": path})
        if not isinstance(output, str):
            raise SiteRejected(f"download {path}: unexpected result", site=self.name)
        data = base64.b64decode(output) if result.get("encoding") == "base64" else output.encode()
        if len(data) > max_bytes:
            raise SiteRejected(
                f"{path} is {len(data)} bytes, over the limit of {max_bytes}", site=self.name
            )
        return data

    async def write_file(self, path: str, data: bytes, system: str) -> None:
        name = path.rsplit("/", 1)[-1] or "upload"
        await self._task(
            "POST",
            "upload",
            path,
            params={"path": path},
            idempotent=True,
            files={"file": (name, data, "application/octet-stream")},
        )

    # -- accounts -------------------------------------------------------------------------
    async def allocations(self) -> list[Allocation]:
        projects = decode_json(
            await self._call("GET", "/account/projects"), self.name, list[WireProject]
        )
        out = []
        for p in projects:
            resp = await self._call("GET", f"/account/projects/{p.id}/project_allocations")
            entries = [
                e
                for a in decode_json(resp, self.name, list[WireAllocation])
                for e in a.entries
                if e.unit == "node_hours"
            ]
            out.append(
                Allocation(
                    project=p.id,
                    allocated=sum(e.allocation for e in entries),
                    used=sum(e.usage for e in entries),
                    unit="node_hours",
                )
            )
        return out
