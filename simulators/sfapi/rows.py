"""sacct and squeue rows as the SF API returns them from ``GET /compute/jobs/{machine}``.

Column names are NERSC's own templates (``Sacct.json``: 107 columns, ``Squeue.json``: 49,
including the odd ``""``, ``"s:c:t"`` and ``"nodelist(reason)"``); every value is a string.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from simulators.common.scheduler import PENDING, RUNNING, SimJob
from simulators.sfapi.sbatch import format_squeue_time, format_time

SACCT_COLUMNS: tuple[str, ...] = (
    "account",
    "admincomment",
    "alloccpus",
    "allocnodes",
    "alloctres",
    "associd",
    "avecpu",
    "avecpufreq",
    "avediskread",
    "avediskwrite",
    "avepages",
    "averss",
    "avevmsize",
    "blockid",
    "cluster",
    "comment",
    "constraints",
    "consumedenergy",
    "consumedenergyraw",
    "cputime",
    "cputimeraw",
    "dbindex",
    "derivedexitcode",
    "elapsed",
    "elapsedraw",
    "eligible",
    "end",
    "exitcode",
    "flags",
    "gid",
    "group",
    "jobid",
    "jobidraw",
    "jobname",
    "layout",
    "maxdiskread",
    "maxdiskreadnode",
    "maxdiskreadtask",
    "maxdiskwrite",
    "maxdiskwritenode",
    "maxdiskwritetask",
    "maxpages",
    "maxpagesnode",
    "maxpagestask",
    "maxrss",
    "maxrssnode",
    "maxrsstask",
    "maxvmsize",
    "maxvmsizenode",
    "maxvmsizetask",
    "mcslabel",
    "mincpu",
    "mincpunode",
    "mincputask",
    "ncpus",
    "nnodes",
    "nodelist",
    "ntasks",
    "priority",
    "partition",
    "qos",
    "qosraw",
    "reason",
    "reqcpufreq",
    "reqcpufreqmin",
    "reqcpufreqmax",
    "reqcpufreqgov",
    "reqcpus",
    "reqmem",
    "reqnodes",
    "reqtres",
    "reservation",
    "reservationid",
    "reserved",
    "resvcpu",
    "resvcpuraw",
    "start",
    "state",
    "submit",
    "suspended",
    "systemcpu",
    "systemcomment",
    "timelimit",
    "timelimitraw",
    "totalcpu",
    "tresusageinave",
    "tresusageinmax",
    "tresusageinmaxnode",
    "tresusageinmaxtask",
    "tresusageinmin",
    "tresusageinminnode",
    "tresusageinmintask",
    "tresusageintot",
    "tresusageoutave",
    "tresusageoutmax",
    "tresusageoutmaxnode",
    "tresusageoutmaxtask",
    "tresusageoutmin",
    "tresusageoutminnode",
    "tresusageoutmintask",
    "tresusageouttot",
    "uid",
    "user",
    "usercpu",
    "wckey",
    "wckeyid",
    "workdir",
)
SQUEUE_COLUMNS: tuple[str, ...] = (
    "account",
    "tres_per_node",
    "min_cpus",
    "min_tmp_disk",
    "end_time",
    "features",
    "group",
    "over_subscribe",
    "jobid",
    "name",
    "comment",
    "time_limit",
    "min_memory",
    "req_nodes",
    "command",
    "priority",
    "qos",
    "reason",
    "",
    "st",
    "user",
    "reservation",
    "wckey",
    "exc_nodes",
    "nice",
    "s:c:t",
    "exec_host",
    "cpus",
    "nodes",
    "dependency",
    "array_job_id",
    "sockets_per_node",
    "cores_per_socket",
    "threads_per_core",
    "array_task_id",
    "time_left",
    "time",
    "nodelist",
    "contiguous",
    "partition",
    "nodelist(reason)",
    "start_time",
    "state",
    "uid",
    "submit_time",
    "licenses",
    "core_spec",
    "schednodes",
    "work_dir",
)


def _ident(column: str) -> str:
    return re.sub(r"\W", "_", column) or "blank"


def _row_struct(name: str, columns: tuple[str, ...]) -> type[msgspec.Struct]:
    """A Struct with one ``str`` field per column, encoded under the column's exact name:
    building and encoding a thousand of these is several times faster than dicts."""
    fields = [(_ident(c), str, msgspec.field(default="", name=c)) for c in columns]
    return msgspec.defstruct(name, fields, kw_only=True, gc=False)  # type: ignore[arg-type]


SacctRow = _row_struct("SacctRow", SACCT_COLUMNS)
SqueueRow = _row_struct("SqueueRow", SQUEUE_COLUMNS)
# squeue's compact state codes
_ST = {
    "PENDING": "PD",
    "RUNNING": "R",
    "COMPLETING": "CG",
    "COMPLETED": "CD",
    "FAILED": "F",
    "CANCELLED": "CA",
    "TIMEOUT": "TO",
}
CPUS_PER_NODE = 256  # Perlmutter CPU node: 128 cores x 2 hyperthreads
PACIFIC = ZoneInfo("America/Los_Angeles")


@functools.lru_cache(maxsize=8192)
def _local(ts: int) -> str:
    """Slurm prints local (Pacific) time without an offset."""
    return datetime.fromtimestamp(ts, PACIFIC).strftime("%Y-%m-%dT%H:%M:%S")


def local_time(ts: float | None, missing: str = "Unknown") -> str:
    return missing if ts is None else _local(int(ts))


def pacific_iso(ts: float) -> str:
    """API timestamps: ISO 8601 with the Pacific offset, e.g. ``2021-07-22T04:55:00-07:00``."""
    return datetime.fromtimestamp(int(ts), PACIFIC).isoformat()


def nodelist(job: SimJob) -> str:
    if job.start_time is None:
        return "None assigned"
    first = 1000 + int(job.id) % 3000
    return f"nid{first:06d}" if job.nodes == 1 else f"nid[{first:06d}-{first + job.nodes - 1:06d}]"


def native_state(job: SimJob) -> str:
    if job.state == "CANCELLED" and job.cancelled_by:
        return f"CANCELLED by {job.cancelled_by}"
    return job.state


def exit_code(job: SimJob) -> str:
    if job.exit_code is None:
        return "0:0"
    if job.state == "CANCELLED":
        return "0:15"  # SIGTERM from scancel
    return f"{job.exit_code}:0"


@functools.lru_cache(maxsize=65536)
def _span(seconds: int) -> str:
    return format_time(seconds)


def _version(job: SimJob) -> tuple[object, ...]:
    return (job.state, job.start_time, job.end_time, job.reason, job.cancelled_by)


def sacct_row(job: SimJob, now: float, uid: int) -> msgspec.Struct:
    """One sacct row.  Built once per change of the job's state and kept on the job; a
    running job's row only gets its clock columns renewed (a poll of a thousand jobs must
    stay in milliseconds)."""
    cached = job.extra.get("_sacct")
    if cached is None or cached[0] != _version(job):
        cached = (_version(job), _sacct_row(job, now, uid))
        job.extra["_sacct"] = cached
    row = cached[1]
    if job.state == RUNNING and job.start_time is not None:
        elapsed = int(max(0.0, now - job.start_time))
        cpus = job.nodes * CPUS_PER_NODE
        row = msgspec.structs.replace(
            row,
            cputime=_span(elapsed * cpus),
            cputimeraw=str(elapsed * cpus),
            elapsed=_span(elapsed),
            elapsedraw=str(elapsed),
        )
    return row


def _sacct_row(job: SimJob, now: float, uid: int) -> msgspec.Struct:
    """Columns not set here are empty strings, as in ``Sacct.json``."""
    x: dict[str, Any] = job.extra
    started = job.start_time is not None
    end = job.end_time if job.end_time is not None else now
    elapsed = int(max(0.0, end - job.start_time)) if job.start_time is not None else 0
    req = job.nodes * CPUS_PER_NODE
    cpus = req if started else 0
    submit = local_time(job.submit_time)
    uid_s = str(uid)
    return SacctRow(
        account=job.account or "",
        alloccpus=str(cpus),
        allocnodes=str(job.nodes if started else 0),
        alloctres=f"billing={cpus},cpu={cpus},mem=0,node={job.nodes}" if cpus else "",
        cluster=job.system,
        comment=job.comment,
        constraints=x.get("constraint", ""),
        cputime=_span(elapsed * cpus),
        cputimeraw=str(elapsed * cpus),
        derivedexitcode="0:0",
        elapsed=_span(elapsed),
        elapsedraw=str(elapsed),
        eligible=submit,
        end=local_time(job.end_time),
        exitcode=exit_code(job),
        flags="SchedMain" if started else "StartRecieved",
        gid=uid_s,
        group=job.user,
        jobid=job.id,
        jobidraw=job.id,
        jobname=job.name,
        ncpus=str(req),
        nnodes=str(job.nodes),
        nodelist=nodelist(job),
        ntasks=x.get("ntasks", ""),
        priority="69120",
        partition=job.partition,
        qos=x.get("qos", job.partition),
        qosraw="1",
        reason=job.reason,
        reqcpus=str(req),
        reqmem=x.get("mem", "0"),
        reqnodes=str(job.nodes),
        reqtres=f"billing={req},cpu={req},node={job.nodes}",
        reservation=x.get("reservation", ""),
        start=local_time(job.start_time),
        state=native_state(job),
        submit=submit,
        suspended="00:00:00",
        timelimit=_span(job.walltime_s),
        timelimitraw=str(job.walltime_s // 60),
        uid=uid_s,
        user=job.user,
        workdir=job.workdir or "",
    )


def squeue_row(job: SimJob, now: float, uid: int) -> msgspec.Struct:
    """One squeue row, cached like ``sacct_row`` (a running job's clocks renewed)."""
    cached = job.extra.get("_squeue")
    if cached is None or cached[0] != _version(job):
        cached = (_version(job), _squeue_row(job, now, uid))
        job.extra["_squeue"] = cached
    row = cached[1]
    if job.state == RUNNING and job.start_time is not None:
        elapsed = max(0.0, now - job.start_time)
        row = msgspec.structs.replace(
            row,
            time_left=format_squeue_time(max(0.0, job.walltime_s - elapsed)),
            time=format_squeue_time(elapsed),
        )
    return row


def _squeue_row(job: SimJob, now: float, uid: int) -> msgspec.Struct:
    x: dict[str, Any] = job.extra
    running = job.state == RUNNING and job.start_time is not None
    elapsed = now - job.start_time if running and job.start_time is not None else 0.0
    reason = "None" if running else job.reason
    nodes = nodelist(job) if running else ""
    return SqueueRow(
        account=job.account or "",
        tres_per_node=x.get("tres_per_node", "N/A"),
        min_cpus="1",
        min_tmp_disk="0",
        end_time=local_time(job.start_time + job.walltime_s, "N/A")
        if running and job.start_time is not None
        else "N/A",
        features=x.get("constraint", "(null)"),
        group=job.user,
        over_subscribe="NO",
        jobid=job.id,
        name=job.name,
        comment=job.comment or "(null)",
        time_limit=format_squeue_time(job.walltime_s),
        min_memory=x.get("mem", "0"),
        command=x.get("command", "(null)"),
        priority="0.00016093254089",
        qos=x.get("qos", job.partition),
        reason=reason,
        blank=job.partition,
        st=_ST.get(job.state, "PD"),
        user=job.user,
        reservation=x.get("reservation", "(null)"),
        wckey="(null)",
        nice="0",
        s_c_t="*:*:*",
        exec_host="login01" if running else "n/a",
        cpus=str(job.nodes * CPUS_PER_NODE),
        nodes=str(job.nodes),
        dependency="(null)",
        array_job_id=job.id,
        sockets_per_node="*",
        cores_per_socket="*",
        threads_per_core="*",
        array_task_id="N/A",
        time_left=format_squeue_time(max(0.0, job.walltime_s - elapsed)),
        time=format_squeue_time(elapsed),
        nodelist=nodes,
        contiguous="0",
        partition=job.partition,
        nodelist_reason_=nodes if running else f"({reason})",
        start_time=local_time(job.start_time, "N/A"),
        state=job.state,
        uid=str(uid),
        submit_time=local_time(job.submit_time),
        licenses="(null)",
        core_spec="N/A",
        schednodes="(null)",
        work_dir=job.workdir or "",
    )


def is_live(job: SimJob) -> bool:
    """squeue shows only jobs the controller still holds."""
    return job.state == PENDING or job.state == RUNNING
