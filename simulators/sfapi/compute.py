"""``/compute/jobs``: sbatch (as a task), squeue/sacct rows, scancel (as a task).

Submitting parses the script's ``#SBATCH`` block and queues the job in the BatchSystem; the
task's result carries the job id, or sbatch's own error text.  When the compute system or its
scheduler is down, sbatch cannot reach the controller: the task completes with Slurm's real
message for that (``Unable to contact slurm controller``), the way a failed ``sbatch`` on a
login node surfaces through the SF API.  Queued jobs stay queued until compute is back.
"""

from __future__ import annotations

import posixpath
from typing import Any

from litestar import Request, Response, delete, get, post

from simulators.common.scheduler import BatchSystem, SimJob, SubmitError
from simulators.sfapi.policy import constraint_problem
from simulators.sfapi.rows import is_live, sacct_row, squeue_row
from simulators.sfapi.sbatch import DirectiveError, parse_directives, parse_nodes, parse_time
from simulators.sfapi.state import SfapiFacility
from simulators.sfapi.wire import BASE, ApiError, as_bool, form, machine, missing, ok, require_user

CONTROLLER_DOWN = "Unable to contact slurm controller (connect failure)"
CACHE_LAG_S = 2.0  # with cached=true (the default) a job this fresh is not yet visible (issue #93)
NOT_A_SCRIPT = (
    "sbatch: error: This does not look like a batch script.  The first\n"
    "sbatch: error: line must start with #! followed by the path to an interpreter.\n"
    "sbatch: error: For instance: #!/bin/sh"
)


def _failed(message: str) -> dict[str, Any]:
    return {"status": "error", "jobid": None, "error": message}


def _controller_up(f: SfapiFacility, sysm: BatchSystem) -> bool:
    return sysm.accepting and not f.is_down("scheduler")


def _read_script(f: SfapiFacility, job: str, is_path: bool) -> tuple[str, str, str]:
    """(script text, command shown by squeue, default work dir); OSError for a bad path."""
    if not is_path:
        return job, "(null)", f.home
    path = job if job.startswith("/") else posixpath.join(f.home, job)
    return f.fs.read(path).decode("utf-8", "replace"), path, posixpath.dirname(path)


def submit_script(
    f: SfapiFacility, sysm: BatchSystem, job: str, is_path: bool, args: list[str]
) -> dict[str, Any]:
    """What ``sbatch`` prints, as the submission task's result."""
    try:
        text, command, workdir = _read_script(f, job, is_path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return _failed(f"sbatch: error: Unable to open file {job}")
    if not text.startswith("#!"):
        return _failed(NOT_A_SCRIPT)
    try:
        d = parse_directives(text)
        nodes = parse_nodes(d.get("nodes", "1") or "1")
        walltime = parse_time(d.options["time"]) if "time" in d.options else None
    except DirectiveError as exc:
        return _failed(str(exc))
    if not _controller_up(f, sysm):
        return _failed(f"sbatch: error: Batch job submission failed: {CONTROLLER_DOWN}")
    if f.settings.enforce_policy:
        problem = constraint_problem(d.get("constraint"))
        if problem:
            return _failed(problem)
    qos = d.get("qos")
    partition = d.get("partition")
    if partition is None and qos is not None:
        if qos not in sysm.partitions:
            return _failed("sbatch: error: Batch job submission failed: Invalid qos specification")
        partition = qos
    extra: dict[str, Any] = {
        k: v
        for k, v in (
            ("qos", qos),
            ("constraint", d.get("constraint")),
            ("ntasks", d.get("ntasks")),
            ("ntasks-per-node", d.get("ntasks-per-node")),
            ("mem", d.get("mem")),
            ("reservation", d.get("reservation")),
        )
        if v
    }
    extra["command"] = command
    extra["body"] = d.body
    extra["args"] = list(args)  # the script's $1, $2, ...
    try:
        sim_job = sysm.submit(
            name=d.get("job-name") or (posixpath.basename(command) if is_path else "sbatch"),
            user=f.settings.user,
            script=text,
            nodes=nodes,
            walltime_s=walltime,
            partition=partition,
            account=d.get("account") or f.default_account,
            command=" ".join([d.body, *args]),
            comment=d.get("comment") or "",
            workdir=d.get("chdir") or workdir,
            stdout_path=d.get("output"),
            stderr_path=d.get("error"),
            extra=extra,
        )
    except SubmitError as exc:
        return _failed(f"sbatch: error: Batch job submission failed: {exc}")
    return {"status": "ok", "jobid": sim_job.id, "error": None}


@post(f"{BASE}/compute/jobs/{{name:str}}", status_code=200)
async def submit(request: Request[Any, Any, Any]) -> Response[bytes]:
    name = request.path_params["name"]
    require_user(request)
    f = machine(request, name)
    data = await form(request)
    absent = [("body", k) for k in ("isPath", "job") if k not in data]
    if absent:
        raise missing(*absent)
    is_path = as_bool(data["isPath"][0], False, "body", "isPath")
    result = submit_script(f, f.systems[name], data["job"][0], is_path, data.get("args", []))
    task = f.add_task(result)
    return ok({"task_id": task.id, "status": "OK", "error": None})


def _select(f: SfapiFacility, sysm: BatchSystem, kwargs: list[str], cached: bool) -> list[SimJob]:
    """Jobs matching the ``name=value`` filters (``jobid=1,2,3``, ``user=``, ``name=``, ...)."""
    sysm.advance()
    filters: dict[str, set[str]] = {}
    for item in kwargs:
        key, _, value = item.partition("=")
        filters.setdefault(key.strip(), set()).update(
            v.strip() for v in value.split(",") if v.strip()
        )
    ids = filters.pop("jobid", None) or filters.pop("jobs", None)
    if ids is not None:
        jobs = [j for j in (sysm.jobs.get(i) for i in ids) if j is not None]
    else:
        jobs = list(sysm.jobs.values())
    for key, values in filters.items():
        attr = {
            "user": "user",
            "name": "name",
            "partition": "partition",
            "account": "account",
            "state": "state",
        }.get(key)
        if attr is not None:
            jobs = [j for j in jobs if getattr(j, attr) in values]
    if cached:
        cutoff = f.clock() - CACHE_LAG_S
        jobs = [j for j in jobs if j.submit_time <= cutoff]
    return jobs


def _query(request: Request[Any, Any, Any], name: str, kwargs: list[str]) -> Response[bytes]:
    require_user(request)
    f = machine(request, name)
    q = request.query_params
    sacct = as_bool(q.get("sacct"), False, "query", "sacct")
    cached = as_bool(q.get("cached"), True, "query", "cached")
    sysm = f.systems[name]
    if not sacct and not _controller_up(f, sysm):
        return ok(
            {"status": "ERROR", "output": [], "error": f"slurm_load_jobs error: {CONTROLLER_DOWN}"}
        )
    jobs = _select(f, sysm, kwargs, cached)
    now, uid = f.clock(), f.settings.uid
    # sacct keeps finished jobs; squeue shows only what the controller still holds
    row_of = sacct_row if sacct else squeue_row
    rows = [row_of(j, now, uid) for j in jobs if sacct or is_live(j)]
    index, limit = _int(q.get("index"), "index"), _int(q.get("limit"), "limit")
    if index or limit is not None:
        rows = rows[index or 0 : (index or 0) + limit if limit is not None else None]
    return ok({"status": "OK", "output": rows, "error": None})


def _int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(
            422,
            [
                {
                    "type": "int_parsing",
                    "loc": ["query", name],
                    "msg": "Input should be a valid integer, unable to parse string as an integer",
                    "input": value,
                }
            ],
        ) from None


@get(f"{BASE}/compute/jobs/{{name:str}}")
async def jobs(request: Request[Any, Any, Any]) -> Response[bytes]:
    name = request.path_params["name"]
    return _query(request, name, request.query_params.getall("kwargs", []))


@get(f"{BASE}/compute/jobs/{{name:str}}/{{jobid:str}}")
async def job(request: Request[Any, Any, Any]) -> Response[bytes]:
    name = request.path_params["name"]
    jobid = request.path_params["jobid"]
    return _query(request, name, [f"jobid={jobid}"])


@delete(f"{BASE}/compute/jobs/{{name:str}}/{{jobid:str}}", status_code=200)
async def cancel(request: Request[Any, Any, Any]) -> Response[bytes]:
    name = request.path_params["name"]
    jobid = request.path_params["jobid"]
    require_user(request)
    f = machine(request, name)
    sysm = f.systems[name]
    if not _controller_up(f, sysm):
        result: dict[str, str | None] = {"status": "error", "output": "", "error": f"scancel: error: {CONTROLLER_DOWN}"}
    else:
        before = sysm.get(jobid)
        if before is None:
            result = {
                "status": "error",
                "output": "",
                "error": f"scancel: error: Kill job error on job id {jobid}: "
                "Invalid job id specified",
            }
        elif before.final:
            result = {
                "status": "error",
                "output": "",
                "error": f"scancel: error: Kill job error on job id {jobid}: "
                "Job/step already completing or completed",
            }
        else:
            sysm.cancel(jobid, by=str(f.settings.uid))
            result = {"status": "ok", "output": "", "error": None}
    task = f.add_task(result)
    return ok({"task_id": task.id, "status": "OK", "error": None})


ROUTES = [submit, jobs, job, cancel]
