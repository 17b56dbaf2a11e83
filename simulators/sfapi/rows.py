"""sacct and squeue rows as the SF API returns them from ``GET /compute/jobs/{machine}``.

Column names are NERSC's own templates (``Sacct.json``: 107 columns, ``Squeue.json``: 49,
including the odd ``""``, ``"s:c:t"`` and ``"nodelist(reason)"``); every value is a string.
A finished job's sacct row never changes again, so it is built once and cached.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from simulators.common.scheduler import FINAL, PENDING, RUNNING, SimJob
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
_SACCT_BLANK = dict.fromkeys(SACCT_COLUMNS, "")
_SQUEUE_BLANK = dict.fromkeys(SQUEUE_COLUMNS, "")
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


def sacct_row(
    job: SimJob, now: float, uid: int, cache: dict[str, dict[str, str]]
) -> dict[str, str]:
    cached = cache.get(job.id)
    if cached is not None:
        return cached
    x: dict[str, Any] = job.extra
    end = (
        job.end_time if job.end_time is not None else (now if job.start_time is not None else None)
    )
    elapsed = 0.0 if job.start_time is None or end is None else max(0.0, end - job.start_time)
    req = job.nodes * CPUS_PER_NODE
    cpus = req if job.start_time is not None else 0
    row = dict(_SACCT_BLANK)
    row.update(
        {
            "account": job.account or "",
            "alloccpus": str(cpus),
            "allocnodes": str(job.nodes if job.start_time is not None else 0),
            "alloctres": f"billing={cpus},cpu={cpus},mem=0,node={job.nodes}" if cpus else "",
            "cluster": job.system,
            "comment": job.comment,
            "constraints": x.get("constraint", ""),
            "cputime": format_time(elapsed * cpus),
            "cputimeraw": str(int(elapsed * cpus)),
            "derivedexitcode": "0:0",
            "elapsed": format_time(elapsed),
            "elapsedraw": str(int(elapsed)),
            "eligible": local_time(job.submit_time),
            "end": local_time(job.end_time),
            "exitcode": exit_code(job),
            "flags": "SchedMain" if job.start_time is not None else "StartRecieved",
            "gid": str(uid),
            "group": job.user,
            "jobid": job.id,
            "jobidraw": job.id,
            "jobname": job.name,
            "ncpus": str(cpus or job.nodes * CPUS_PER_NODE),
            "nnodes": str(job.nodes),
            "nodelist": nodelist(job),
            "ntasks": x.get("ntasks", ""),
            "priority": "69120",
            "partition": job.partition,
            "qos": x.get("qos", job.partition),
            "qosraw": "1",
            "reason": job.reason,
            "reqcpus": str(job.nodes * CPUS_PER_NODE),
            "reqmem": x.get("mem", "0"),
            "reqnodes": str(job.nodes),
            "reqtres": f"billing={req},cpu={req},node={job.nodes}",
            "reservation": x.get("reservation", ""),
            "start": local_time(job.start_time),
            "state": native_state(job),
            "submit": local_time(job.submit_time),
            "suspended": "00:00:00",
            "timelimit": format_time(job.walltime_s),
            "timelimitraw": str(job.walltime_s // 60),
            "uid": str(uid),
            "user": job.user,
            "workdir": job.workdir or "",
        }
    )
    if job.state in FINAL:
        cache[job.id] = row
    return row


def squeue_row(job: SimJob, now: float, uid: int) -> dict[str, str]:
    x: dict[str, Any] = job.extra
    running = job.state == RUNNING
    elapsed = now - job.start_time if running and job.start_time is not None else 0.0
    reason = "None" if running else job.reason
    nodes = nodelist(job) if running else ""
    row = dict(_SQUEUE_BLANK)
    row.update(
        {
            "account": job.account or "",
            "tres_per_node": x.get("tres_per_node", "N/A"),
            "min_cpus": "1",
            "min_tmp_disk": "0",
            "end_time": local_time(job.start_time + job.walltime_s, "N/A")
            if running and job.start_time
            else "N/A",
            "features": x.get("constraint", "(null)"),
            "group": job.user,
            "over_subscribe": "NO",
            "jobid": job.id,
            "name": job.name,
            "comment": job.comment or "(null)",
            "time_limit": format_squeue_time(job.walltime_s),
            "min_memory": x.get("mem", "0"),
            "req_nodes": "",
            "command": x.get("command", "(null)"),
            "priority": "0.00016093254089",
            "qos": x.get("qos", job.partition),
            "reason": reason,
            "": job.partition,
            "st": _ST.get(job.state, "PD"),
            "user": job.user,
            "reservation": x.get("reservation", "(null)"),
            "wckey": "(null)",
            "exc_nodes": "",
            "nice": "0",
            "s:c:t": "*:*:*",
            "exec_host": "login01" if running else "n/a",
            "cpus": str(job.nodes * CPUS_PER_NODE),
            "nodes": str(job.nodes),
            "dependency": "(null)",
            "array_job_id": job.id,
            "sockets_per_node": "*",
            "cores_per_socket": "*",
            "threads_per_core": "*",
            "array_task_id": "N/A",
            "time_left": format_squeue_time(max(0.0, job.walltime_s - elapsed)),
            "time": format_squeue_time(elapsed),
            "nodelist": nodes,
            "contiguous": "0",
            "partition": job.partition,
            "nodelist(reason)": nodes if running else f"({reason})",
            "start_time": local_time(job.start_time, "N/A"),
            "state": job.state,
            "uid": str(uid),
            "submit_time": local_time(job.submit_time),
            "licenses": "(null)",
            "core_spec": "N/A",
            "schednodes": "(null)",
            "work_dir": job.workdir or "",
        }
    )
    return row


def is_live(job: SimJob) -> bool:
    """squeue shows only jobs the controller still holds."""
    return job.state == PENDING or job.state == RUNNING
