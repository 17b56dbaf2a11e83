"""PBS Pro as ALCF runs it, behind the IRI compute endpoints.

The JobSpec arrives as PSI/J JSON (the spec's ``JobSpec``: unknown top-level fields refused),
is checked the way ALCF's qsub checks it (messages verbatim from ALCF's user guide, see
notes/ANCHORS.md §1.2), and queued on the common batch system.  A job's state is shown as
the PBS ``job_state`` letter plus ``Exit_status`` in ``meta_data``, and as the IRI state
from the PBS -> IRI table of ANCHORS §1.5.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec

from simulators.common.scheduler import (
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    TIMEOUT,
    BatchSystem,
    SimJob,
)
from simulators.iri import catalog

Pos = Annotated[int, msgspec.Meta(ge=1)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class WireResources(msgspec.Struct, omit_defaults=True):
    node_count: Pos | None = None
    process_count: Pos | None = None
    processes_per_node: Pos | None = None
    cpu_cores_per_process: Pos | None = None
    gpu_cores_per_process: Pos | None = None
    exclusive_node_use: bool = True
    memory: Pos | None = None


class WireAttributes(msgspec.Struct, omit_defaults=True):
    duration: Pos | None = None
    queue_name: NonEmpty | None = None
    account: NonEmpty | None = None
    reservation_id: NonEmpty | None = None
    custom_attributes: dict[str, str] = {}


class WireVolume(msgspec.Struct, omit_defaults=True):
    source: NonEmpty
    target: NonEmpty
    read_only: bool = True


class WireContainer(msgspec.Struct, omit_defaults=True):
    image: NonEmpty
    volume_mounts: list[WireVolume] = []


class WireJobSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    executable: NonEmpty | None = None
    container: WireContainer | None = None
    arguments: list[str] = []
    directory: NonEmpty | None = None
    name: NonEmpty | None = None
    inherit_environment: bool = True
    environment: dict[str, str] = {}
    stdin_path: NonEmpty | None = None
    stdout_path: NonEmpty | None = None
    stderr_path: NonEmpty | None = None
    resources: WireResources | None = None
    attributes: WireAttributes | None = None
    pre_launch: NonEmpty | None = None
    post_launch: NonEmpty | None = None
    launcher: NonEmpty | None = None


# Verbatim qsub messages at ALCF (ANCHORS §1.2). The walltime one follows the same hook's
# pattern; "Unknown queue" and "Illegal attribute or resource value" are PBS's own texts.
NEED_ACCOUNT = "qsub: Account_Name is required to be set."
NEED_FILESYSTEMS = "qsub: Resource: filesystems is required to be set."
NEED_WALLTIME = "qsub: Resource: walltime is required to be set."
REJECTED = "qsub: Job rejected by all possible destinations"
UNKNOWN_QUEUE = "qsub: Unknown queue"
BAD_VALUE = "qsub: Illegal attribute or resource value"
NOT_PERMITTED = "qsub: Unauthorized Request"
FINISHED = "qdel: Job has finished"
BAD_STATE = "qalter: Request invalid for state of job"

# PBS Exit_status for jobs that did not exit by themselves
EXIT_DELETED = 265  # qdel of a job (PSI/J's pbs_base convention: 256 + SIGKILL)
EXIT_WALLTIME = -29  # JOB_EXEC_KILL_WALLTIME

# PBS job_state -> IRI JobState (ANCHORS §1.5); F is split by Exit_status in iri_state().
PBS_TO_IRI = {
    "Q": "queued",
    "W": "queued",
    "T": "queued",
    "M": "queued",
    "H": "held",
    "S": "held",
    "U": "held",
    "R": "active",
    "E": "active",
    "B": "active",
}


class QsubError(Exception):
    """qsub refused the job; ``str(exc)`` is its message."""


def command_of(spec: WireJobSpec) -> str:
    return " ".join(
        [spec.executable or (spec.container.image if spec.container else ""), *spec.arguments]
    )


def walltime(seconds: int) -> str:
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def check(
    spec: WireJobSpec, sysm: BatchSystem, projects: dict[str, float], *, strict: bool = True
) -> tuple[str, int, int, str]:
    """ALCF's qsub checks, in its order: (queue, nodes, walltime seconds, filesystems).
    ``strict``: Polaris's queue limits as published (else prod takes any size, any walltime
    from 0)."""
    attrs = spec.attributes or WireAttributes()
    if not attrs.account:
        raise QsubError(NEED_ACCOUNT)
    filesystems = attrs.custom_attributes.get("filesystems", "").strip()
    if not filesystems:
        raise QsubError(NEED_FILESYSTEMS)
    if any(fs not in catalog.KNOWN_FILESYSTEMS for fs in filesystems.split(":")):
        raise QsubError(BAD_VALUE)
    if attrs.duration is None:
        raise QsubError(NEED_WALLTIME)
    queue_name = attrs.reservation_id or attrs.queue_name or catalog.DEFAULT_QUEUE
    queue = catalog.QUEUE_BY_NAME.get(queue_name)
    if queue is None:
        raise QsubError(UNKNOWN_QUEUE)
    if not strict:
        queue = catalog.RELAXED.get(queue_name, queue)
    if projects and attrs.account not in projects:
        raise QsubError(NOT_PERMITTED)
    nodes = nodes_of(spec)
    max_nodes = min(queue.max_nodes or sysm.total_nodes, sysm.total_nodes)
    if (
        not queue.min_nodes <= nodes <= max_nodes
        or attrs.duration > queue.walltime_limit(nodes)
        or attrs.duration < queue.min_walltime_s
    ):
        raise QsubError(REJECTED)
    return queue_name, nodes, attrs.duration, filesystems


def nodes_of(spec: WireJobSpec) -> int:
    r = spec.resources
    if r is None:
        return 1
    if r.node_count:
        return r.node_count
    if r.process_count and r.processes_per_node:
        return -(-r.process_count // r.processes_per_node)
    return 1


def script_of(spec: WireJobSpec, queue: str, nodes: int, seconds: int, filesystems: str) -> str:
    """The qsub command line the job amounts to, for /_sim/jobs."""
    a = spec.attributes or WireAttributes()
    return (
        f"qsub -A {a.account} -q {queue} -l select={nodes},walltime={walltime(seconds)},"
        f"filesystems={filesystems} -N {spec.name or 'STDIN'} -- {command_of(spec)}"
    )


def pbs_state(job: SimJob) -> str:
    if job.state == PENDING:
        return "Q"
    if job.state == RUNNING:
        return "R"
    return "F"


def exit_status(job: SimJob) -> int | None:
    if job.state == CANCELLED:
        return EXIT_DELETED
    if job.state == TIMEOUT:
        return EXIT_WALLTIME
    return job.exit_code if job.final else None


def iri_state(letter: str, status: int | None) -> str:
    if letter in ("F", "X"):
        if status == 0:
            return "completed"
        return "canceled" if status == EXIT_DELETED else "failed"
    return PBS_TO_IRI.get(letter, "queued")


def _when(t: float | None) -> str:
    return time.strftime("%a %b %d at %H:%M", time.localtime(t or 0))


def comment(job: SimJob, accepting: bool) -> str | None:
    if job.state == PENDING:
        if not accepting or job.reason == "Resources":
            return "Not Running: Not enough free nodes available"
        return None
    ran = f"Job run at {_when(job.start_time)} on {job.nodes} nodes" if job.start_time else None
    if job.state == RUNNING:
        return ran
    if job.state == CANCELLED:
        return (
            f"Job deleted by {job.cancelled_by or job.user}" if job.cancelled_by else "Job deleted"
        )
    if job.state == TIMEOUT:
        return f"{ran} and exceeded its walltime" if ran else None
    if job.state == FAILED:
        return f"{ran} and failed" if ran else "Job failed"
    return f"{ran} and finished" if ran else None


def job_id(job: SimJob) -> str:
    """PBS job ids carry the server's name: ``<seq>.<server>``."""
    return f"{job.id}.{job.system}-pbs-01.hsn.cm.{job.system}.alcf.anl.gov"


def seq_of(native_id: str) -> str:
    return native_id.partition(".")[0]


def job_body(job: SimJob, accepting: bool, include_spec: bool) -> dict[str, Any]:
    letter = pbs_state(job)
    status = exit_status(job)
    extra = job.extra
    meta: dict[str, Any] = {
        "job_state": letter,
        "queue": job.partition,
        "Account_Name": job.account,
        "project": job.account,
        "Job_Name": job.name,
        "Job_Owner": f"{job.user}@{job.system}-login-01.hsn.cm.{job.system}.alcf.anl.gov",
        "qtime": int(job.submit_time),
        "Resource_List": {
            "nodect": job.nodes,
            "select": str(job.nodes),
            "walltime": walltime(job.walltime_s),
            "filesystems": extra.get("filesystems", ""),
        },
    }
    if job.start_time is not None:
        meta["stime"] = int(job.start_time)
    if status is not None:
        meta["Exit_status"] = status
    note = comment(job, accepting)
    if note:
        meta["comment"] = note
    t = (
        job.end_time
        if job.end_time is not None
        else job.start_time
        if job.start_time is not None
        else job.submit_time
    )
    body: dict[str, Any] = {
        "id": job_id(job),
        "status": {
            "state": iri_state(letter, status),
            "time": t,
            "message": note,
            "exit_code": status,
            "meta_data": meta,
        },
    }
    if include_spec:
        body["job_spec"] = extra.get("spec")
    return body
