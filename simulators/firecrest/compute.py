"""``/compute/{system}/jobs``: submit, list, one job, metadata, cancel (synchronous in v2)."""

from __future__ import annotations

import posixpath
import re
from typing import Any

import msgspec
from litestar import Response, delete, get, post, put
from litestar.params import FromPath

from simulators.common.scheduler import PENDING, RUNNING, SimJob, SubmitError
from simulators.firecrest.common import Req, compute_context, no_content, query_bool, respond
from simulators.firecrest.errors import FirecrestError, field_error, validation_error
from simulators.firecrest.sbatch import DirectiveError, parse_directives
from simulators.firecrest.state import job_metadata, job_wire

_JOB_ID = re.compile(r"^[a-zA-Z0-9]+$")
NO_ACCOUNT = "Invalid account or account/partition combination specified"
# v2's pydantic models accept both the camelCase alias and the snake_case field name
_SNAKE_TO_CAMEL = {
    "working_directory": "workingDirectory",
    "script_path": "scriptPath",
    "standard_input": "standardInput",
    "standard_output": "standardOutput",
    "standard_error": "standardError",
}


class JobDescription(msgspec.Struct, rename="camel"):
    working_directory: str
    script: str | None = None
    script_path: str | None = None
    name: str | None = None
    account: str | None = None
    partition: str | None = None
    reservation: str | None = None
    constraints: str | None = None
    env: dict[str, str] | list[str] = {}
    standard_input: str | None = None
    standard_output: str | None = None
    standard_error: str | None = None


def _decode_job(raw: bytes) -> JobDescription:
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise field_error("body", "", "JSON decode error") from None
    if not isinstance(body, dict):
        raise field_error(
            "body", "", "Input should be a valid dictionary or object to extract fields from"
        )
    job = body.get("job")
    if job is None:
        raise field_error("body", "job", "Field required")
    if not isinstance(job, dict):
        raise field_error(
            "body", "job", "Input should be a valid dictionary or object to extract fields from"
        )
    job = {_SNAKE_TO_CAMEL.get(k, k): v for k, v in job.items()}
    try:
        desc = msgspec.convert(job, JobDescription)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = text.rsplit("$.", 1)[-1].rstrip("`") if "$." in text else "job"
        message = (
            "Field required"
            if text.startswith("Object missing required field")
            else text.split(" - ")[0]
        )
        if text.startswith("Object missing required field"):
            where = text.split("`")[1]
        raise validation_error(
            [{"location": "body", "name": f"job.{where}", "message": message}]
        ) from None
    if (desc.script is None) == (desc.script_path is None):
        raise field_error(
            "body", "job", "Value error, Exactly one of `script` or `scriptPath` must be provided"
        )
    return desc


def _environment(env: dict[str, str] | list[str]) -> dict[str, str]:
    if isinstance(env, dict):
        return env
    return dict(item.partition("=")[::2] for item in env)


def _submit(fac: Any, user: str, sysm: Any, desc: JobDescription) -> SimJob:
    script = desc.script
    if script is None:  # scriptPath: the script is a file on the cluster
        try:
            script = fac.fs.read(desc.script_path).decode(errors="replace")
        except OSError:
            raise _slurm_error(
                f"sbatch: error: Unable to open file {desc.script_path}", user
            ) from None
    try:
        d = parse_directives(script)
    except DirectiveError as exc:
        raise _slurm_error(str(exc), user) from None
    account = desc.account or d.account
    if account is None and fac.settings.enforce_policy:
        # CSCS: every job is charged to a project account; users have no default one
        raise _slurm_error(f"sbatch: error: Batch job submission failed: {NO_ACCOUNT}", user)
    account = account or next(iter(fac.settings.projects), None)
    reservation = desc.reservation or d.reservation
    if reservation is not None and reservation not in fac.reservations:
        raise _slurm_error("sbatch: error: Batch job submission failed: Requested reservation is invalid", user)
    try:
        return sysm.submit(  # type: ignore[no-any-return]
            # options FirecREST passes on sbatch's command line win over #SBATCH lines
            name=desc.name or d.job_name or "sbatch",
            user=user,
            script=script,
            nodes=d.nodes or 1,
            walltime_s=d.walltime_s,
            partition=desc.partition or d.partition,
            account=account,
            comment=d.comment or "",
            workdir=_workdir(desc.working_directory, user),
            stdout_path=desc.standard_output or d.output,
            stderr_path=desc.standard_error or d.error,
            environment=_environment(desc.env),
            extra={
                "stdin": desc.standard_input,
                "reservation": desc.reservation or d.reservation,
                "ntasks": d.ntasks,
                "ntasks_per_node": d.ntasks_per_node,
            },
        )
    except SubmitError as exc:
        raise _slurm_error(f"sbatch: error: Batch job submission failed: {exc}", user) from None


def _workdir(path: str, user: str) -> str:
    # sbatch runs over SSH from the user's home, so a relative --chdir starts there
    return path if path.startswith("/") else posixpath.normpath(f"/home/{user}/{path}")


# The one deliberate deviation from the real server: v2's SbatchCommand raises SlurmError on
# a non-zero exit and its error handler maps every SchedulerError to 500. A refused job is the
# client's mistake, and a 5xx would read as "retry"; the simulator answers 400 with the same
# body and message (the adapter treats both the real 500 and this 400 as a permanent refusal).
SLURM_REFUSAL_STATUS = 400


def _slurm_error(stderr: str, user: str) -> FirecrestError:
    return FirecrestError(
        SLURM_REFUSAL_STATUS, f"Unexpected Slurm command response. exit_status:1 std_err:{stderr}\n", user=user
    )


def _check_job_id(job_id: str, user: str) -> None:
    if not _JOB_ID.match(job_id):
        raise validation_error(
            [
                {
                    "location": "path",
                    "name": "job_id",
                    "message": "String should match pattern '^[a-zA-Z0-9]+$'",
                }
            ]
        )


@post("/compute/{system_name:str}/jobs", status_code=201)
async def post_job(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    fac, user, sysm = compute_context(request, system_name)
    desc = _decode_job(await request.body())
    job = _submit(fac, user, sysm, desc)
    return respond({"jobId": job.id}, user, 201)


@get("/compute/{system_name:str}/jobs", sync_to_thread=False)
def get_jobs(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    fac, user, sysm = compute_context(request, system_name)
    q = request.query_params
    account, name = q.get("account") or None, q.get("name") or None
    allusers = query_bool(q, "allusers")
    group = fac.settings.user
    now = fac.clock()
    jobs = [
        job_wire(j, group, now)
        for j in sysm.all()
        if (allusers or j.user == user)
        and (account is None or j.account == account)
        and (name is None or j.name == name)
    ]
    return respond({"jobs": jobs or None}, user)


def _job(request: Req, system_name: str, job_id: str, missing: str) -> tuple[Any, str, SimJob]:
    fac, user, sysm = compute_context(request, system_name)
    _check_job_id(job_id, user)
    job = sysm.get(job_id)
    if job is None:
        raise FirecrestError(404, missing, user=user)
    return fac, user, job


@get("/compute/{system_name:str}/jobs/{job_id:str}", sync_to_thread=False)
def get_job(request: Req, system_name: FromPath[str], job_id: FromPath[str]) -> Response[bytes]:
    fac, user, job = _job(request, system_name, job_id, "Job not found.")
    return respond({"jobs": [job_wire(job, fac.settings.user, fac.clock())]}, user)


@get("/compute/{system_name:str}/jobs/{job_id:str}/metadata", sync_to_thread=False)
def get_job_metadata(
    request: Req, system_name: FromPath[str], job_id: FromPath[str]
) -> Response[bytes]:
    _, user, job = _job(request, system_name, job_id, "Job not found.")
    return respond({"jobs": [job_metadata(job)]}, user)


@delete(
    "/compute/{system_name:str}/jobs/{job_id:str}", status_code=200, sync_to_thread=False
)  # the Response sets 204
def delete_job(request: Req, system_name: FromPath[str], job_id: FromPath[str]) -> Response[bytes]:
    fac, user, sysm = compute_context(request, system_name)
    _check_job_id(job_id, user)
    if sysm.cancel(job_id, by=str(fac.settings.uid)) is None:
        raise FirecrestError(404, "Job not found", user=user)
    return no_content(user)


class AttachBody(msgspec.Struct):
    command: str


@put("/compute/{system_name:str}/jobs/{job_id:str}/attach", status_code=200)  # the Response sets 204
async def put_attach(request: Req, system_name: FromPath[str], job_id: FromPath[str]) -> Response[bytes]:
    fac, user, job = _job(request, system_name, job_id, "Job not found.")
    try:
        body = msgspec.json.decode(await request.body(), type=AttachBody)
    except msgspec.DecodeError:
        raise field_error("body", "", "JSON decode error") from None
    except msgspec.ValidationError as exc:
        text = str(exc)
        raise field_error("body", "command", "Field required" if "missing" in text else text.split(" - ")[0]) from None
    if job.state != RUNNING:
        why = "Job is pending execution" if job.state == PENDING else "Job/step already completing or completed"
        raise _slurm_error(f"srun: error: Unable to create step for job {job.id}: {why}", user)
    fac.attach(job, body.command)
    return no_content(user)


ROUTES = [post_job, get_jobs, get_job, get_job_metadata, delete_job, put_attach]
