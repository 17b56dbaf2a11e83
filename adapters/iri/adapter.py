"""DOE IRI Facility API v1 (ALCF: ``https://api.alcf.anl.gov/api/v1``) and v2 (``/api/v2``:
the reference implementation and newer deployments).

The wire is JSON: a PSI/J JobSpec to submit, ``Job``/``JobStatus`` back, RFC 9457 problem
details on errors, and filesystem operations that answer with a task id to poll.  Behind
ALCF's API is PBS Pro: ``meta_data.job_state`` carries the PBS letter, which we keep as the
native state; qsub's refusals come back as the problem's ``detail`` and are surfaced as is.

The version is the site's ``api_version``, or the one its URL ends with, or found at first
contact (v2 first, then v1); ``health()`` says which, in its ``api`` component.  v2's
differences (URN vocabularies, POST filesystem reads, ``Idempotency-Key``) are in ``vocab``.

Layout (psij-python style): ``wire`` (structs), ``translate`` and ``vocab`` (tables and pure
build/parse functions), ``auth``, and this thin adapter class that does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
import msgspec

from adapters.base import AdapterBase
from adapters.errors import (
    AuthFailed,
    NotFound,
    SiteOverloaded,
    SiteRejected,
    SiteServerError,
)
from adapters.http import SiteHTTP, decode_json, default_message, error_for, parse_retry_after
from adapters.iri.auth import Auth
from adapters.iri.translate import (
    LIST_LIMIT,
    PORTABLE,
    TASK_FINAL,
    build_job,
    file_entry,
    filesystem_name,
    parse_allocations,
    parse_health,
    parse_status,
    problem_detail,
    task_error,
    unavailable_error,
)
from adapters.iri.vocab import (
    API_PATH,
    API_VERSIONS,
    ApiVersion,
    file_bytes,
    fs_request,
    idempotency_key,
    resource_kind,
)
from adapters.iri.wire import (
    WireAllocation,
    WireFile,
    WireIncident,
    WireJob,
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
    ComponentHealth,
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
    API_VERSIONS: ClassVar[tuple[str, ...]] = API_VERSIONS
    portable = PORTABLE
    task_timeout = 30.0  # seconds a filesystem task may take before we give up

    def __init__(self, *, api_version: str | None = None, **kw: Any):
        url = str(kw.get("url", "")).rstrip("/")
        named = API_PATH.search(url)
        from_url = named.group(1) if named else None
        if named:  # the base URL is the server's; the version is a path we add per call
            kw["url"] = url[: named.start()]
        if api_version is not None and api_version not in API_VERSIONS:
            raise ValueError(f"api_version must be one of {', '.join(API_VERSIONS)}")
        if api_version and from_url and api_version != from_url:
            raise ValueError(f"the URL names /api/{from_url} but api_version is {api_version}")
        super().__init__(**kw)
        self.api_version: ApiVersion | None = api_version or from_url  # type: ignore[assignment]
        self.version_source = (
            "configured" if api_version else "named by the URL" if from_url else "not known yet"
        )
        self._discovery = asyncio.Lock()
        self._idempotency_keys = True  # until a v2 facility says it keeps no idempotency store
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
    async def version(self) -> ApiVersion:
        """The site's API version: configured, named by the URL, or found at first contact
        (``/api/v2`` first; a 404 there means a v1 facility such as ALCF)."""
        if self.api_version is not None:
            return self.api_version
        async with self._discovery:
            if self.api_version is None:
                for v in ("v2", "v1"):
                    resp = await self.http.request(
                        "GET", f"/api/{v}/status/resources", auth=False, params={"limit": 1}, ok=(404,)
                    )
                    if resp.status_code != 404:
                        self.api_version, self.version_source = v, "found at first contact"
                        log.info("%s speaks IRI Facility API %s", self.name, v)
                        break
                else:
                    raise NotFound(
                        f"neither /api/v2 nor /api/v1 answers at {self.url}: not an IRI Facility API",
                        site=self.name,
                        status=404,
                    )
        assert self.api_version is not None
        return self.api_version

    async def _call(self, method: str, url: str, **kw: Any) -> httpx.Response:
        prefix = f"/api/{await self.version()}"
        try:
            return await self.http.request(method, f"{prefix}{url}", **kw)
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
        if res is None or resource_kind(res.resource_type) != kind:
            raise NotFound(f"no {kind} resource named {name!r} at this facility", site=self.name)
        return res.id

    async def _compute_id(self, system: str | None) -> str:
        return await self._resource_id(self.system_or_default(system), "compute")

    async def _fs_id(self, path: str) -> str:
        return await self._resource_id(filesystem_name(path), "storage")

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
        h = parse_health(resources, incidents, self.systems)
        api = ComponentHealth(
            "api", "up", f"IRI Facility API {self.api_version} ({self.version_source})"
        )
        return SiteHealth(state=h.state, components=[*h.components, api], incidents=h.incidents)

    # -- jobs -----------------------------------------------------------------------------
    async def submit(self, req: SubmitRequest) -> SubmitReceipt:
        system = self.system_or_default(req.system)
        rid = await self._compute_id(system)
        body = build_job(req)
        keyed = await self.version() == "v2" and self._idempotency_keys
        resp = await self._post_job(rid, body, req, system, keyed)
        if keyed and resp.status_code == 501 and "idempotency" in problem_detail(resp).lower():
            # the facility runs without an idempotency store (the reference server then
            # answers 501 to any key): send plainly from now on, as v1 does
            log.warning("%s keeps no idempotency store; submitting without keys", self.name)
            self._idempotency_keys = keyed = False
            resp = await self._post_job(rid, body, req, system, keyed)
        if resp.status_code == 503:
            raise unavailable_error(resp, self.name)
        if keyed and resp.status_code == 409:  # the same key is still being handled there
            raise SiteOverloaded(
                f"an earlier try of this job is still in progress there: {problem_detail(resp)}",
                site=self.name,
                status=409,
                retry_after=parse_retry_after(resp.headers.get("retry-after")),
            )
        if keyed and resp.status_code == 422 and "idempotency" in problem_detail(resp).lower():
            # a stored answer to an earlier try with another body: that try made a job, so
            # this is uncertain (retriable, settled by tag), never a refusal
            raise SiteServerError(
                f"an earlier try of this job was answered with another body: {problem_detail(resp)}",
                site=self.name,
                status=422,
            )
        if not resp.is_success:
            raise error_for(resp, self.name, default_message)
        job = decode_json(resp, self.name, WireJob)
        return SubmitReceipt(native_id=job.id, system=system)

    async def _post_job(
        self, rid: str, body: dict[str, Any], req: SubmitRequest, system: str, keyed: bool
    ) -> httpx.Response:
        headers = {"Idempotency-Key": idempotency_key(req.tag, system, req.attempt)} if keyed else {}
        return await self._call(
            "POST",
            f"/compute/job/{rid}",
            json=body,
            headers=headers,
            idempotent=keyed,  # with a key, a resend is replayed, not a second job
            ok=(409, 422, 501, 503),
        )

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

    async def _pages(
        self, rid: str, filters: dict[str, Any] | None, include_spec: bool = False
    ) -> Any:
        """Every page of a listing, until an empty page or one with nothing new: a facility
        may cap its pages below ours, so a short page is not the end."""
        offset, seen = 0, set[str]()
        while True:
            page = await self._list(rid, filters, offset, include_spec)
            fresh = [j for j in page if j.id not in seen]
            if not fresh:  # empty, or a facility that ignores offset: nothing more to get
                return
            seen.update(j.id for j in fresh)
            yield fresh
            offset += len(page)

    async def find_by_tag(self, tag: str, system: str) -> SubmitReceipt | None:
        system = self.system_or_default(system)
        rid = await self._compute_id(system)
        async for page in self._pages(rid, None, include_spec=True):
            for job in page:
                st = parse_status(job)
                if st is not None and st.tag == tag:
                    return SubmitReceipt(native_id=job.id, system=system)
        return None

    async def statuses(self, native_ids: Sequence[str], system: str) -> dict[str, JobStatus]:
        """Only the asked ids (a facility may ignore the filter and list others), paged
        until each is found or the listing ends."""
        rid = await self._compute_id(system)
        wanted = list(dict.fromkeys(native_ids))
        out: dict[str, JobStatus] = {}
        for i in range(0, len(wanted), LIST_LIMIT):
            chunk = wanted[i : i + LIST_LIMIT]
            missing = set(chunk)
            async for page in self._pages(rid, {"job_ids": chunk}):
                for job in page:
                    if job.id not in missing:
                        continue
                    missing.discard(job.id)
                    st = parse_status(job)
                    if st is not None:
                        out[job.id] = st
                if not missing:
                    break
        return out

    async def cancel(self, native_id: str, system: str) -> None:
        rid = await self._compute_id(system)
        # 409: PBS says the job has finished already, which is what we wanted
        await self._call("DELETE", f"/compute/cancel/{rid}/{native_id}", ok=(409,))

    # -- files ----------------------------------------------------------------------------
    async def _task(self, op: str, path: str, **kw: Any) -> tuple[Any, dict[str, Any]]:
        """Start a filesystem task and poll it to its result (``output`` and the rest)."""
        rid = await self._fs_id(path)
        method = kw.pop("method")
        resp = await self._call(method, f"/filesystem/{op}/{rid}", ok=(503,), **kw)
        if resp.status_code == 503:
            raise unavailable_error(resp, self.name)
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

    async def _read_op(self, op: str, path: str, **args: bool | int | str) -> tuple[Any, dict[str, Any]]:
        """v1: GET with a query; v2: POST with a JSON body (GET is 405 there)."""
        request = fs_request(await self.version(), op, path, **args)
        return await self._task(op, path, idempotent=True, **request)

    async def list_dir(self, path: str, system: str) -> list[FileEntry]:
        output, _ = await self._read_op("ls", path, showHidden=True)
        try:
            files = msgspec.convert(output, list[WireFile])
        except msgspec.ValidationError as exc:
            raise SiteRejected(f"ls {path}: unexpected result ({exc})", site=self.name) from None
        return [file_entry(f) for f in files]

    async def read_file(self, path: str, system: str, max_bytes: int) -> bytes:
        output, _ = await self._read_op("stat", path)
        size = msgspec.convert(output, WireStat).size if isinstance(output, dict) else None
        if size is not None and size > max_bytes:
            raise SiteRejected(
                f"{path} is {size} bytes, over the limit of {max_bytes}", site=self.name
            )
        output, result = await self._read_op("download", path)
        if not isinstance(output, str):
            raise SiteRejected(f"download {path}: unexpected result", site=self.name)
        encoding = result.get("encoding")
        data = file_bytes(output, encoding if isinstance(encoding, str) else None, size)
        if len(data) > max_bytes:
            raise SiteRejected(
                f"{path} is {len(data)} bytes, over the limit of {max_bytes}", site=self.name
            )
        return data

    async def write_file(self, path: str, data: bytes, system: str) -> None:
        name = path.rsplit("/", 1)[-1] or "upload"
        await self._task(
            "upload",
            path,
            method="POST",  # multipart with the path in the query, in v1 and v2 alike
            params={"path": path},
            idempotent=True,
            files={"file": (name, data, "application/octet-stream")},
        )

    # -- accounts -------------------------------------------------------------------------
    async def allocations(self) -> list[Allocation]:
        projects = decode_json(
            await self._call("GET", "/account/projects"), self.name, list[WireProject]
        )
        out: list[Allocation] = []
        for p in projects:
            resp = await self._call("GET", f"/account/projects/{p.id}/project_allocations")
            out += parse_allocations(p.id, decode_json(resp, self.name, list[WireAllocation]))
        return out
