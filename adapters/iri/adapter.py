"""DOE IRI Facility API v1, as ALCF runs it (``https://api.alcf.anl.gov/api/v1``).

The wire is JSON: a PSI/J JobSpec to submit, ``Job``/``JobStatus`` back, RFC 9457 problem
details on errors, and filesystem operations that answer with a task id to poll.  Behind
ALCF's API is PBS Pro: ``meta_data.job_state`` carries the PBS letter, which we keep as the
native state; qsub's refusals come back as the problem's ``detail`` and are surfaced as is.

Layout (psij-python style): ``wire`` (structs), ``translate`` (tables and pure build/parse
functions), ``auth``, and this thin adapter class that does the I/O.
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
from adapters.iri.auth import Auth
from adapters.iri.translate import (
    LIST_LIMIT,
    TASK_FINAL,
    UNAVAILABLE_SLUG,
    build_job,
    file_entry,
    filesystem_name,
    parse_health,
    parse_status,
    task_error,
)
from adapters.iri.wire import (
    WireAllocation,
    WireFile,
    WireIncident,
    WireJob,
    WireProblem,
    WireProject,
    WireResource,
    WireStat,
    WireTask,
    WireTaskSubmit,
)
from adapters.secrets import Secret, load_secret
from adapters.tokens import TokenCache
from adapters.types import (
    Allocation,
    FileEntry,
    JobStatus,
    SiteHealth,
    SubmitReceipt,
    SubmitRequest,
)

log = logging.getLogger("superfed.adapters.iri")


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
