"""CSCS FirecREST v2 (``https://api.cscs.ch/hpc/firecrest/v2``).

Synchronous JSON over Slurm (or PBS): ``POST /compute/{system}/jobs`` takes a batch script
and answers ``{"jobId"}``; ``GET /compute/{system}/jobs`` lists every job of the caller in one
call; ``/status/systems`` carries each service's health; small files go through
``/filesystem/{system}/ops/*``.  Errors are ``{"errorType", "message", ...}``.

Tokens: OIDC client credentials (Keycloak).  FirecREST v2 refuses a token with under 30 s
left, so the cache refreshes 60 s before expiry.  sbatch's refusals arrive as HTTP 500 with
sbatch's own words (v2 maps every SlurmError to 500); they are permanent, so they become
``SiteRejected`` here.  FirecREST v2 has no accounting endpoint: ``allocations()`` is [].

Layout: ``wire`` (structs), ``translate`` (tables and pure build/parse functions), ``auth``,
and this thin adapter class.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence
from typing import Any

from adapters.base import AdapterBase
from adapters.errors import AdapterError, AuthFailed, NotFound, SiteRejected
from adapters.firecrest.auth import Auth
from adapters.firecrest.translate import (
    MAX_OPS_FILE_SIZE,
    PORTABLE,
    SBATCH_REFUSAL,
    build_submit_body,
    file_entry,
    firecrest_message,
    job_status,
    parse_health,
    tag_of,
)
from adapters.firecrest.wire import (
    WireJob,
    WireJobs,
    WireLs,
    WireStatOut,
    WireSubmitted,
    WireSystems,
    WireToken,
    WireUserInfo,
)
from adapters.http import SiteHTTP, decode_json, error_for
from adapters.secrets import Secret, load_secret
from adapters.tokens import TokenCache
from adapters.types import (
    FINAL_STATES,
    Allocation,
    FileEntry,
    JobStatus,
    SiteHealth,
    SubmitReceipt,
    SubmitRequest,
)

log = logging.getLogger("superfed.adapters.firecrest")


class FirecrestAdapter(AdapterBase):
    kind = "firecrest"
    Auth = Auth
    portable = PORTABLE

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        auth: Auth = self.auth  # type: ignore[assignment]
        self._token_http = SiteHTTP(
            self.name, self.client, settings=self.http_settings, message_of=firecrest_message
        )
        # FirecREST v2 refuses tokens with < 30 s left: refresh a minute ahead
        self.tokens = TokenCache(self._fetch_token, margin=60)
        self.http = SiteHTTP(
            self.name,
            self.client,
            tokens=self.tokens,
            settings=self.http_settings,
            message_of=firecrest_message,
        )
        self._auth = auth

    async def _fetch_token(self) -> tuple[Secret, float | None]:
        a = self._auth
        secret = load_secret(
            file=a.client_secret_file, env=a.client_secret_env, what="FirecREST client secret"
        )
        resp = await self._token_http.request(
            "POST",
            a.token_url,
            auth=False,
            idempotent=False,
            ok=(400, 401, 403),
            data={
                "grant_type": "client_credentials",
                "client_id": a.client_id,
                "client_secret": secret.reveal(),
            },
        )
        if resp.status_code in (400, 401, 403):
            raise AuthFailed(
                f"token endpoint refused client {a.client_id!r} "
                f"(HTTP {resp.status_code}): {firecrest_message(resp)}",
                site=self.name,
            )
        token = decode_json(resp, self.name, WireToken)
        return Secret(token.access_token), token.expires_in

    # -- health ---------------------------------------------------------------------------
    async def health(self) -> SiteHealth:
        resp = await self.http.request("GET", "/status/systems")
        return parse_health(decode_json(resp, self.name, WireSystems), self.systems)

    # -- jobs -----------------------------------------------------------------------------
    async def submit(self, req: SubmitRequest) -> SubmitReceipt:
        system = self.system_or_default(req.system)
        resp = await self.http.request(
            "POST",
            f"/compute/{system}/jobs",
            idempotent=False,
            ok=(403, 500),
            json=build_submit_body(req),
        )
        if resp.status_code in (403, 500):
            message = firecrest_message(resp)
            # 403: a quota refusal (SlurmQuotaError); 500 in sbatch's words: a refusal, no crash
            if resp.status_code == 403 or SBATCH_REFUSAL.search(message):
                raise SiteRejected(message, site=self.name, status=resp.status_code)
            raise error_for(resp, self.name, firecrest_message)
        job_id = decode_json(resp, self.name, WireSubmitted).jobId
        return SubmitReceipt(native_id=str(job_id), system=system)

    async def _jobs(self, system: str) -> list[WireJob]:
        resp = await self.http.request(
            "GET", f"/compute/{system}/jobs", params={"allusers": "false"}
        )
        return decode_json(resp, self.name, WireJobs).jobs or []

    async def find_by_tag(self, tag: str, system: str) -> SubmitReceipt | None:
        system = self.system_or_default(system)
        for job in await self._jobs(system):
            if tag_of(job) == tag or job.name == tag:
                return SubmitReceipt(native_id=job.jobId, system=system)
        return None

    async def statuses(self, native_ids: Sequence[str], system: str) -> dict[str, JobStatus]:
        system = self.system_or_default(system)
        wanted = set(native_ids)
        out: dict[str, JobStatus] = {}
        for job in await self._jobs(system):  # one call: v2 lists all the caller's jobs
            if job.jobId in wanted:
                status = job_status(job)
                if status is not None:
                    out[job.jobId] = status
        return out

    async def cancel(self, native_id: str, system: str) -> None:
        system = self.system_or_default(system)
        try:
            await self.http.request("DELETE", f"/compute/{system}/jobs/{native_id}")
        except AdapterError as exc:
            if isinstance(exc, (NotFound, AuthFailed)) or (exc.retriable and exc.status != 500):
                raise
            # scancel on a finished job fails (500 or 400 on some versions): final is fine
            current = await self.statuses([native_id], system)
            status = current.get(native_id)
            if status is None or status.state not in FINAL_STATES:
                raise

    # -- files ----------------------------------------------------------------------------
    async def list_dir(self, path: str, system: str) -> list[FileEntry]:
        system = self.system_or_default(system)
        resp = await self.http.request(
            "GET", f"/filesystem/{system}/ops/ls", params={"path": path, "showHidden": "true"}
        )
        return [file_entry(f) for f in decode_json(resp, self.name, WireLs).output or []]

    async def read_file(self, path: str, system: str, max_bytes: int) -> bytes:
        system = self.system_or_default(system)
        resp = await self.http.request(
            "GET", f"/filesystem/{system}/ops/stat", params={"path": path}
        )
        size = decode_json(resp, self.name, WireStatOut).output.size
        limit = min(max_bytes, MAX_OPS_FILE_SIZE)
        if size > limit:
            raise SiteRejected(
                f"{path} is {size} bytes, over the limit of {limit}", site=self.name, status=413
            )
        resp = await self.http.request(
            "GET", f"/filesystem/{system}/ops/download", params={"path": path}
        )
        if len(resp.content) > max_bytes:
            raise SiteRejected(
                f"{path} is over the limit of {max_bytes} bytes", site=self.name, status=413
            )
        return resp.content

    async def write_file(self, path: str, data: bytes, system: str) -> None:
        system = self.system_or_default(system)
        if len(data) > MAX_OPS_FILE_SIZE:
            raise SiteRejected(
                f"{len(data)} bytes is over FirecREST's direct upload limit ({MAX_OPS_FILE_SIZE})",
                site=self.name,
                status=413,
            )
        directory, name = posixpath.split(path)
        await self.http.request(
            "POST",
            f"/filesystem/{system}/ops/upload",
            idempotent=True,  # writing the same bytes twice leaves the same file
            params={"path": directory or "/"},
            files={"file": (name, data, "application/octet-stream")},
        )

    async def allocations(self) -> list[Allocation]:
        # FirecREST v2 has no accounting endpoint, but userinfo lists the accounts the user may
        # charge: each is reported with its hours unknown, so the broker knows which projects
        # the site can take (a job for an account it does not list is refused there)
        resp = await self.http.request("GET", f"/status/{self.system_or_default(None)}/userinfo")
        info = decode_json(resp, self.name, WireUserInfo)
        return [Allocation(project=a.name, allocated=0.0, used=0.0, unit="unknown",
                           note="FirecREST lists the account, not its hours") for a in info.accounts]
