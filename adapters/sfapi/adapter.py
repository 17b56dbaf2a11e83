"""``SfapiAdapter``: the broker's interface over NERSC's Superfacility API v1.2.

Thin I/O over the pure functions in ``translate``: sbatch, scancel and commands are
asynchronous tasks polled at ``/tasks/{id}``; job states come from one sacct query per poll.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import msgspec

from adapters.base import AdapterBase
from adapters.errors import (
    AdapterError,
    AuthFailed,
    NotFound,
    SiteRejected,
    SiteServerError,
    SiteTimeout,
)
from adapters.http import HttpSettings, SiteHTTP, decode_json
from adapters.secrets import Secret
from adapters.sfapi import translate as t
from adapters.sfapi.auth import (
    Auth,
    ClientKey,
    default_token_url,
    refusal_reason,
    static_token,
    token_form,
)
from adapters.sfapi.auth import Auth as SfapiAuth
from adapters.slurm import render_sbatch
from adapters.tokens import TokenCache
from adapters.types import (
    Allocation,
    FileEntry,
    JobStatus,
    SiteHealth,
    SubmitReceipt,
    SubmitRequest,
    overall_state,
)

log = logging.getLogger("superfed.adapters.sfapi")

API_PATH = "/api/v1.2"
TASK_FIRST_POLL = 0.05  # seconds; doubles up to TASK_MAX_POLL
TASK_MAX_POLL = 1.0
TASK_DEADLINE = 60.0  # a submission task still "new" after this is reported as a timeout
STATUS_CHUNK = 500  # job ids per sacct query (keeps the URL short)


class SfapiAdapter(AdapterBase):
    kind: ClassVar[str] = "sfapi"
    Auth: ClassVar[type[Auth]] = Auth
    portable = t.PORTABLE
    auth: SfapiAuth  # the base class stores the decoded struct; this says which one

    def __init__(
        self,
        *,
        name: str,
        url: str,
        systems: list[str],
        auth: Any,
        http: HttpSettings | None = None,
        client: httpx.AsyncClient | None = None,
    ):
        api = url.rstrip("/")
        if not re.search(r"/api/v\d", api):
            api += API_PATH
        super().__init__(
            name=name,
            url=api,
            systems=systems or ["perlmutter"],
            auth=auth,
            http=http,
            client=client,
        )
        self.token_url = auth.token_url or default_token_url(self.url)
        self.tokens = TokenCache(self._fetch_token, margin=60)
        self.http = SiteHTTP(name, self.client, tokens=self.tokens, settings=self.http_settings)
        self._key: ClientKey | None = None
        self._user: str | None = None
        self.task_deadline = TASK_DEADLINE

    @classmethod
    def endpoints(cls, url: str, auth: msgspec.Struct) -> list[str]:
        # without a token_url the key signs assertions for NERSC's OIDC server (or {origin}'s)
        token_url = getattr(auth, "token_url", None) or default_token_url(url)
        return [url, token_url]

    # -- credentials ------------------------------------------------------------------------
    async def _fetch_token(self) -> tuple[Secret, float | None]:
        fixed = static_token(self.auth)
        if fixed is not None:
            return fixed, None
        if self._key is None:
            self._key = ClientKey.load(self.auth)
        form = token_form(self._key, self.token_url, self.auth.assertion_ttl)
        resp = await self.http.request(
            "POST", self.token_url, auth=False, idempotent=True, ok=(400, 401, 403), data=form
        )
        if resp.status_code in (400, 401, 403):
            raise AuthFailed(
                f"client credentials refused by the token endpoint: {refusal_reason(resp.content)}",
                site=self.name,
            )
        # a 200 without a token is garbage (retriable), not a refusal
        body = decode_json(resp, self.name, t.TokenWire)
        return Secret(body.access_token), float(body.expires_in or 600)

    # -- plumbing -----------------------------------------------------------------------------
    def _u(self, path: str) -> str:
        return f"{self.url}/{path.lstrip('/')}"

    async def _get(self, path: str, type_: Any, *, auth: bool = True, **kw: Any) -> Any:
        resp = await self.http.request("GET", self._u(path), auth=auth, **kw)
        return decode_json(resp, self.name, type_)

    async def _wait_task(self, task_id: str, deadline: float) -> dict[str, Any]:
        """Poll ``/tasks/{id}`` at once, then every 0.05 s doubling to 1 s, until the task is
        final; its parsed result."""
        delay, stop = TASK_FIRST_POLL, time.monotonic() + deadline
        while True:
            try:
                task = await self._get(f"tasks/{task_id}", t.TaskWire)
            except NotFound:
                # task records can vanish independently of the job: uncertain, not refused
                raise SiteServerError(
                    f"task {task_id} disappeared before it finished", site=self.name
                ) from None
            status = (task.status or "new").lower()
            if status == "completed":
                return t.task_result(task.result)
            if status in ("failed", "error", "cancelled"):
                raise SiteServerError(
                    f"task {task_id} {status}: {task.result or 'no detail'}", site=self.name
                )
            if time.monotonic() + delay > stop:
                raise SiteTimeout(
                    f"task {task_id} still running after {deadline:.0f}s", site=self.name
                )
            await asyncio.sleep(delay)
            delay = min(TASK_MAX_POLL, delay * 2)

    async def _jobs(self, system: str, kwargs: list[str], *, sacct: bool = True) -> list[t.JobRow]:
        params = [
            ("sacct", "true" if sacct else "false"),
            ("cached", "false"),
            *(("kwargs", k) for k in kwargs),
        ]
        out = await self._get(f"compute/jobs/{system}", t.JobsWire, params=params)
        if out.status.upper() == "ERROR":
            raise t.classify(out.error or "job query failed", self.name)
        return out.output

    async def _username(self) -> str:
        if self._user is None:
            self._user = (await self._get("account/", t.UserWire)).name
        return self._user

    # -- health -------------------------------------------------------------------------------
    async def health(self) -> SiteHealth:
        resources = await self._get("status", list[t.StatusWire], auth=False)
        components = t.components_of(resources, self.systems)
        kinds = t.component_names(resources, self.systems)
        try:
            outages, planned = await asyncio.gather(
                self._get("status/outages", list[list[t.OutageWire]], auth=False),
                self._get("status/outages/planned", list[list[t.OutageWire]], auth=False),
            )
        except AdapterError as exc:  # outages are extra detail; the states above stand
            log.info("%s: outage list unavailable: %s", self.name, exc)
            outages, planned = [], []
        incidents = t.incidents_of(
            [o for g in outages for o in g], [o for g in planned for o in g], self.systems, kinds
        )
        return SiteHealth(overall_state(components), components, incidents)

    # -- jobs ---------------------------------------------------------------------------------
    async def submit(self, req: SubmitRequest) -> SubmitReceipt:
        system = self.system_or_default(req.system)
        script = render_sbatch(req.spec, req.tag, account=req.charged)
        # Never retried: a POST that timed out may have run (find_by_tag settles it).
        resp = await self.http.request(
            "POST",
            self._u(f"compute/jobs/{system}"),
            idempotent=False,
            data={"job": script, "isPath": "false"},
        )
        accepted = decode_json(resp, self.name, t.TaskAccepted)
        if accepted.status.upper() == "ERROR":
            raise t.classify(accepted.error or "submission refused", self.name)
        result = await self._wait_task(accepted.task_id, self.task_deadline)
        if str(result.get("status", "")).lower() != "ok":
            raise t.classify(
                str(result.get("error") or "sbatch failed without a message"), self.name
            )
        jobid = result.get("jobid")
        if jobid in (None, ""):
            raise SiteServerError(
                f"task {accepted.task_id} finished without a job id", site=self.name
            )
        return SubmitReceipt(str(jobid).strip(), system)

    async def find_by_tag(self, tag: str, system: str) -> SubmitReceipt | None:
        system = self.system_or_default(system)
        user = await self._username()
        for sacct in (True, False):  # sacct may lag behind the controller; squeue does not
            rows = await self._jobs(system, [f"user={user}"], sacct=sacct)
            ids = [
                r.jobid for r in rows if t.tag_matches(r, tag) and r.jobid and "." not in r.jobid
            ]
            if ids:
                return SubmitReceipt(max(ids, key=lambda i: (len(i), i)), system)
        return None

    async def statuses(self, native_ids: Sequence[str], system: str) -> dict[str, JobStatus]:
        system = self.system_or_default(system)
        ids = list(dict.fromkeys(str(i) for i in native_ids))
        out: dict[str, JobStatus] = {}
        for start in range(0, len(ids), STATUS_CHUNK):
            chunk = ids[start : start + STATUS_CHUNK]
            wanted = set(chunk)
            for row in await self._jobs(system, [f"jobid={','.join(chunk)}"]):
                st = t.job_status(row, wanted)
                if st is not None:
                    out[st.native_id] = st
        return out

    async def cancel(self, native_id: str, system: str) -> None:
        system = self.system_or_default(system)
        resp = await self.http.request("DELETE", self._u(f"compute/jobs/{system}/{native_id}"))
        accepted = decode_json(resp, self.name, t.TaskAccepted)
        if accepted.status.upper() == "ERROR":
            raise t.classify(accepted.error or "scancel refused", self.name)
        try:
            result = await self._wait_task(accepted.task_id, 10.0)
        except SiteTimeout:
            return  # scancel is on its way; the next poll confirms it
        error = str(result.get("error") or "")
        if str(result.get("status", "")).lower() != "ok" and t.ALREADY_FINAL not in error:
            raise t.classify(error or "scancel failed", self.name)

    # -- files --------------------------------------------------------------------------------
    def _file_url(self, op: str, system: str, path: str) -> str:
        # sfapi_client appends the absolute path as is: ls/perlmutter//global/homes/...
        return self._u(f"utilities/{op}/{system}/{quote(path, safe='/')}")

    async def _ls(self, path: str, system: str) -> list[t.DirEntryWire]:
        resp = await self.http.request("GET", self._file_url("ls", system, path))
        listing = decode_json(resp, self.name, t.DirectoryWire)
        if listing.status.upper() == "ERROR":
            raise t.classify(listing.error or f"cannot list {path}", self.name)
        return listing.entries

    async def list_dir(self, path: str, system: str) -> list[FileEntry]:
        return t.file_entries(await self._ls(path, self.system_or_default(system)))

    async def read_file(self, path: str, system: str, max_bytes: int) -> bytes:
        system = self.system_or_default(system)
        entries = [e for e in await self._ls(path, system) if e.name not in (".", "..")]
        if len(entries) != 1 or (entries[0].perms or "-")[0] == "d":
            raise SiteRejected(f"{path} is a directory", site=self.name)
        if (entries[0].size or 0) > max_bytes:
            raise SiteRejected(
                f"{path} is {int(entries[0].size or 0)} bytes, over the {max_bytes} byte limit",
                site=self.name,
            )
        resp = await self.http.request(
            "GET", self._file_url("download", system, path), params={"binary": "true"}
        )
        got = decode_json(resp, self.name, t.DownloadWire)
        if got.status.upper() == "ERROR":
            raise t.classify(got.error or f"cannot read {path}", self.name)
        text = got.file or ""
        data = base64.b64decode(text) if got.is_binary else text.encode()
        if len(data) > max_bytes:
            raise SiteRejected(f"{path} is over the {max_bytes} byte limit", site=self.name)
        return data

    async def write_file(self, path: str, data: bytes, system: str) -> None:
        system = self.system_or_default(system)
        name = path.rstrip("/").rsplit("/", 1)[-1] or "upload"
        resp = await self.http.request(
            "PUT",
            self._file_url("upload", system, path),
            files={"file": (name, data, "application/octet-stream")},
        )
        result = decode_json(resp, self.name, t.UploadWire)
        if result.status.upper() == "ERROR":
            raise t.classify(result.error or f"cannot write {path}", self.name)

    # -- accounts -----------------------------------------------------------------------------
    async def allocations(self) -> list[Allocation]:
        projects = await self._get("account/projects", list[t.ProjectWire])
        return [
            Allocation(
                p.repo_name, float(p.hours_given or 0.0), float(p.hours_used or 0.0), "node_hours"
            )
            for p in projects
        ]
