"""CSCS FirecREST v2 (``https://api.cscs.ch/hpc/firecrest/v2``).

Synchronous JSON over Slurm (or PBS): ``POST /compute/{system}/jobs`` takes a batch script
and answers ``{"jobId"}``; ``GET /compute/{system}/jobs`` lists every job of the caller in one
call; ``/status/systems`` carries each service's health; small files go through
``/filesystem/{system}/ops/*``.  Errors are ``{"errorType", "message", ...}``.

Tokens: OIDC client credentials (Keycloak).  FirecREST v2 refuses a token with under 30 s
left, so the cache refreshes 60 s before expiry.  sbatch's refusals arrive as HTTP 500 with
sbatch's own words (v2 maps every SlurmError to 500); they are permanent, so they become
``SiteRejected`` here.  FirecREST v2 has no accounting endpoint: ``allocations()`` is [].

Layout: tables, wire structs, pure build/parse functions, then the thin adapter class.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from adapters.base import AdapterBase
from adapters.errors import AdapterError, AuthFailed, NotFound, SiteRejected
from adapters.http import SiteHTTP, decode_json, default_message, error_for
from adapters.secrets import Secret, load_secret
from adapters.slurm import STATE_MAP as SLURM_STATES
from adapters.slurm import base_state, render_sbatch
from adapters.tags import name_with_tag, tag_from_comment, tag_from_name
from adapters.tokens import TokenCache
from adapters.types import (
    Allocation,
    ComponentHealth,
    FileEntry,
    HealthState,
    JobState,
    JobStatus,
    SiteHealth,
    SubmitReceipt,
    SubmitRequest,
    overall_state,
)

log = logging.getLogger("superfed.adapters.firecrest")

# -- tables ---------------------------------------------------------------------------------
# FirecREST's health words.  A ServiceHealth entry has only `healthy`, `latency`, `message`
# and `lastChecked` (spec: SchedulerServiceHealth & co.); `health_word` names what it says.
HEALTH_MAP: dict[str, HealthState] = {
    "healthy": "up",  # healthy: true, answered promptly
    "slow": "degraded",  # healthy: true, but the check took SLOW_CHECK_S or more
    "unhealthy": "down",  # healthy: false (FirecREST then answers 503 on that service)
    "unchecked": "unknown",  # never checked yet (no lastChecked, no verdict)
}
SLOW_CHECK_S = 5.0  # FirecREST's own probe timeout is 10 s; half of it is a struggling service
# serviceType (spec: BackendServiceType) -> the broker's component name
SERVICE_COMPONENT: dict[str, str] = {
    "scheduler": "compute",  # the one placement needs: can jobs be submitted and run
    "ssh": "login",
    "filesystem": "filesystem",
    "s3": "storage",
    "exception": "monitoring",  # the health check itself failed
}
# PBS job states, which FirecREST passes through for PBS clusters (qstat job_state letters).
PBS_STATES: dict[str, JobState] = {
    "B": "ACTIVE",  # array job has begun
    "E": "ACTIVE",  # exiting after having run
    "F": "COMPLETED",  # finished (FAILED when its exit code is not 0)
    "H": "HELD",  # held
    "M": "QUEUED",  # moved to another server
    "Q": "QUEUED",  # queued
    "R": "ACTIVE",  # running
    "S": "HELD",  # suspended
    "T": "QUEUED",  # being moved
    "U": "HELD",  # suspended, workstation busy
    "W": "QUEUED",  # waiting for its start time
    "X": "COMPLETED",  # subjob finished
}
FILE_TYPES: dict[str, str] = {"-": "file", "d": "directory", "l": "link"}  # `ls -l` type letter
MAX_OPS_FILE_SIZE = 5 * 1024 * 1024  # dataOperation.maxOpsFileSize default: direct up/download
# sbatch refusals arrive as 500 "Unexpected Slurm command response. exit_status:1 std_err:..."
_SBATCH_REFUSAL = re.compile(r"sbatch: error:|Batch job submission failed|qsub: ", re.I)


def psij_state(native: str, exit_code: int | None = None) -> JobState | None:
    """Slurm words (``CANCELLED by 1234``) or PBS letters to PSI/J; None when unknown."""
    word = base_state(native)
    if word in SLURM_STATES:
        return SLURM_STATES[word]
    state = PBS_STATES.get(native.strip()[:1]) if len(native.strip()) == 1 else None
    if state == "COMPLETED" and exit_code:
        return "FAILED"
    return state


def health_word(healthy: bool | None, latency: float | None, last_checked: str | None) -> str:
    if healthy is None or (not healthy and last_checked is None):
        return "unchecked"
    if not healthy:
        return "unhealthy"
    if latency is not None and latency >= SLOW_CHECK_S:
        return "slow"
    return "healthy"


# -- wire structs (lenient: servers add fields) ----------------------------------------------
class WireToken(msgspec.Struct):
    access_token: str
    expires_in: float | None = None


class WireServiceHealth(msgspec.Struct):  # field names are the wire's camelCase
    serviceType: str
    healthy: bool | None = None
    latency: float | None = None
    message: str | None = None
    path: str | None = None
    lastChecked: str | None = None


class WireSystem(msgspec.Struct):
    name: str
    servicesHealth: list[WireServiceHealth] | None = None


class WireSystems(msgspec.Struct):
    systems: list[WireSystem]


class WireJobStatus(msgspec.Struct):
    state: str | list[str]
    stateReason: str | None = None
    exitCode: int | None = None


class WireJob(msgspec.Struct):
    jobId: str
    status: WireJobStatus
    name: str = ""
    comment: str | None = None  # not in 2.5.6's JobModel; read if a server sends it


class WireJobs(msgspec.Struct):
    jobs: list[WireJob] | None  # the key is always there; null when there are none


class WireSubmitted(msgspec.Struct):
    jobId: str | int  # a string on the wire; pyfirecrest's own fixtures use an int


class WireFile(msgspec.Struct):
    name: str
    type: str
    size: str | int = 0
    lastModified: str | None = None
    permissions: str | None = None


class WireLs(msgspec.Struct):
    output: list[WireFile] | None


class WireStat(msgspec.Struct):
    size: int


class WireStatOut(msgspec.Struct):
    output: WireStat


# -- pure translations ---------------------------------------------------------------------
def tag_of(job: WireJob) -> str | None:
    return tag_from_name(job.name) or tag_from_comment(job.comment)


def build_submit_body(req: SubmitRequest) -> dict[str, Any]:
    """The ``POST /compute/{system}/jobs`` body for a request.  The script carries every
    ``#SBATCH`` option; the JSON fields FirecREST turns into sbatch flags repeat the ones it
    knows (they win over the script's), and the job name carries the tag."""
    spec, a = req.spec, req.spec.attributes
    account = req.project or a.account
    job: dict[str, Any] = {
        "name": name_with_tag(spec.name, req.tag, default="superfed"),
        # FirecREST runs sbatch over SSH from the user's home: "." is the home directory
        "workingDirectory": spec.directory or ".",
        "script": render_sbatch(spec, req.tag, account=account),
    }
    if account:
        job["account"] = account
    if a.queue_name and not a.custom_attributes.get("queue_is_qos"):
        job["partition"] = a.queue_name
    if a.reservation_id:
        job["reservation"] = a.reservation_id
    if spec.stdout_path:
        job["standardOutput"] = spec.stdout_path
    if spec.stderr_path:
        job["standardError"] = spec.stderr_path
    return {"job": job}


def job_status(job: WireJob) -> JobStatus | None:
    """None when the state is a word we do not know (logged; absence is not completion)."""
    raw = job.status.state
    native = ",".join(raw) if isinstance(raw, list) else raw
    first = raw[0] if isinstance(raw, list) and raw else native
    code = job.status.exitCode
    state = psij_state(first, code)
    if state is None:
        log.warning("firecrest job %s has an unknown state %r", job.jobId, native)
        return None
    reason = job.status.stateReason
    return JobStatus(
        native_id=job.jobId,
        state=state,
        native_state=native,
        exit_code=code if state in ("COMPLETED", "FAILED", "CANCELED") else None,
        message=reason if reason and reason != "None" else None,
        tag=tag_of(job),
    )


def parse_health(systems: WireSystems, wanted: Sequence[str]) -> SiteHealth:
    """One component per service type, the worst over the wanted systems and paths."""
    order = {"down": 0, "unknown": 1, "degraded": 2, "up": 3}
    by_name = {s.name.lower(): s for s in systems.systems}
    worst: dict[str, tuple[HealthState, str]] = {}

    def note(component: str, state: HealthState, detail: str) -> None:
        if component not in worst or order[state] < order[worst[component][0]]:
            worst[component] = (state, detail)

    for name in wanted:
        system = by_name.get(name.lower())
        if system is None or not system.servicesHealth:
            note("compute", "unknown", f"{name}: no health reported")
            continue
        for h in system.servicesHealth:
            component = SERVICE_COMPONENT.get(h.serviceType, h.serviceType)
            word = health_word(h.healthy, h.latency, h.lastChecked)
            where = f"{name}{' ' + h.path if h.path else ''}"
            note(component, HEALTH_MAP[word], f"{where}: {h.message or word}")
    components = [ComponentHealth(c, s, d) for c, (s, d) in sorted(worst.items())]
    return SiteHealth(state=overall_state(components), components=components, incidents=[])


def file_entry(f: WireFile) -> FileEntry:
    try:
        size = int(f.size)
    except ValueError:
        size = 0
    return FileEntry(
        name=posixpath.basename(f.name.rstrip("/")) or f.name,
        type=FILE_TYPES.get(f.type, "other"),  # type: ignore[arg-type]
        size=size,
        mtime=f.lastModified,
        permissions=f.permissions,
    )


def firecrest_message(resp: httpx.Response) -> str:
    """FirecREST's own ``message``; Keycloak's ``error_description`` for the token endpoint."""
    try:
        body = msgspec.json.decode(resp.content)
    except msgspec.DecodeError:
        return default_message(resp)
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return body["message"].strip()
        if isinstance(body.get("error"), str):
            desc = body.get("error_description")
            return f"{body['error']}: {desc}" if desc else body["error"]
    return default_message(resp)


# -- the adapter -----------------------------------------------------------------------------
class Auth(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """OIDC client credentials; the secret comes from a file or an environment variable."""

    client_id: str
    token_url: str
    client_secret_file: str | None = None
    client_secret_env: str | None = None


class FirecrestAdapter(AdapterBase):
    kind = "firecrest"
    Auth = Auth

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
            if resp.status_code == 403 or _SBATCH_REFUSAL.search(message):
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
            if status is None or status.state not in ("COMPLETED", "FAILED", "CANCELED"):
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
        # FirecREST v2 has no accounting endpoint (userinfo lists account names, no hours)
        return []
