"""FirecREST's words and the pure functions that translate them.

Tables first (health, service components, PBS letters, file types), then build/parse
functions the adapter calls.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from adapters.firecrest.wire import WireFile, WireJob, WireSystems
from adapters.http import default_message
from adapters.profile import Vocabulary
from adapters.slurm import STATE_MAP as SLURM_STATES
from adapters.slurm import base_state, render_sbatch
from adapters.tags import name_with_tag, tag_from_comment, tag_from_name
from adapters.types import (
    FINAL_STATES,
    ComponentHealth,
    FileEntry,
    HealthState,
    JobState,
    JobStatus,
    SiteHealth,
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
SBATCH_REFUSAL = re.compile(r"sbatch: error:|Batch job submission failed|qsub: ", re.I)


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


# -- pure translations ---------------------------------------------------------------------
def tag_of(job: WireJob) -> str | None:
    return tag_from_name(job.name) or tag_from_comment(job.comment)


# A portable job in CSCS's words: the queue is a Slurm partition (FirecREST's ``partition``),
# a node type other than the system's own is a constraint.
PORTABLE = Vocabulary(queue="queue_name", queue_word="partition", constraint="slurm.constraint")


def build_submit_body(req: SubmitRequest) -> dict[str, Any]:
    """The ``POST /compute/{system}/jobs`` body for a request.  The script carries every
    ``#SBATCH`` option; the JSON fields FirecREST turns into sbatch flags repeat the ones it
    knows (they win over the script's), and the job name carries the tag."""
    spec, a = req.spec, req.spec.attributes
    # the script is rendered (and every field checked) first; the JSON repeats checked values
    script = render_sbatch(spec, req.tag, account=req.charged)
    account = req.charged
    job: dict[str, Any] = {
        "name": name_with_tag(spec.name, req.tag, default="superfed"),
        # FirecREST runs sbatch over SSH from the user's home: "." is the home directory
        "workingDirectory": spec.directory or ".",
        "script": script,
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
        exit_code=code if state in FINAL_STATES else None,
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


