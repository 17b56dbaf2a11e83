"""``/filesystem/{system}/transfer/*``: FirecREST v2's long-running file operations, each a
Slurm "transfer job" on the cluster (no task ids).

cp, mv, rm, compress and extract submit a small bash script that the simulated shell runs
when the job ends; its log says "Files were successfully ..." as the real scripts do, which
is how pyfirecrest decides success.  upload and download go through the staging area
(``staging.py``): an upload's job waits for the staged object and writes it onto the cluster
(``wake`` ends it as soon as the client completes the multipart upload); a download's job
puts the file in the store for the client to GET."""

from __future__ import annotations

import posixpath
import shlex
import uuid
from typing import Any

import msgspec
from litestar import Response, delete, post
from litestar.params import FromPath

from simulators.common.scheduler import SimJob, SubmitError
from simulators.firecrest.common import Req, filesystem_context, respond
from simulators.firecrest.errors import FirecrestError, field_error, validation_error
from simulators.firecrest.staging import MAX_OBJECT, StagingArea, urls

DIRECTIVES = "#SBATCH --nodes=1\n#SBATCH --time=0-00:15:00\n"  # dataOperation.datatransferJobsDirectives
WALLTIME_S = 15 * 60
_ALIASES = {
    "source_path": "sourcePath",
    "target_path": "targetPath",
    "match_pattern": "matchPattern",
    "transfer_directives": "transferDirectives",
    "file_size": "fileSize",
    "transfer_method": "transferMethod",
    "path": "sourcePath",  # pyfirecrest's upload sends the target file as "path"
}
COMPRESSION = {"gzip": "z", "bzip2": "j", "xz": "J", "none": ""}


class TransferBody(msgspec.Struct, rename="camel"):
    source_path: str | None = None
    target_path: str | None = None
    account: str | None = None
    dereference: bool = False
    compression: str = "gzip"
    match_pattern: str | None = None
    transfer_directives: dict[str, Any] | None = None


def decode(raw: bytes, required: tuple[str, ...]) -> TransferBody:
    """The request body, with v2's aliases (snake_case, ``path``) accepted as pydantic does."""
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise field_error("body", "", "JSON decode error") from None
    if not isinstance(data, dict):
        raise field_error("body", "", "Input should be a valid dictionary or object to extract fields from")
    data = {_ALIASES.get(k, k): v for k, v in data.items()}
    if isinstance(data.get("transferDirectives"), dict):
        data["transferDirectives"] = {_ALIASES.get(k, k): v for k, v in data["transferDirectives"].items()}
    missing = [{"location": "body", "name": k, "message": "Field required"} for k in required if data.get(k) is None]
    if missing:
        raise validation_error(missing)
    try:
        body = msgspec.convert(data, TransferBody)
    except msgspec.ValidationError as exc:
        where = str(exc).rsplit("$.", 1)[-1].rstrip("`") if "$." in str(exc) else ""
        raise field_error("body", where, str(exc).split(" - ")[0]) from None
    if body.compression not in COMPRESSION:
        raise field_error("body", "compression", "Input should be 'none', 'bzip2', 'gzip' or 'xz'")
    return body


def _absolute(path: str | None, name: str, user: str) -> str:
    if not path or not path.startswith("/"):
        raise FirecrestError(400, f"The provided path ({path}) is not an absolute path.", user=user)
    if "\x00" in path or "\n" in path:
        raise field_error("body", name, "Path must not contain NUL or newline characters")
    return posixpath.normpath(path)


def _context(request: Req, system_name: str, path: str | None) -> tuple[Any, str, str]:
    fac, user, name = filesystem_context(request, system_name, path)
    if not fac.scheduler_healthy():
        raise FirecrestError(503, f"The scheduler service for the requested system ({name}) is unhealthy.", user=user)
    return fac, user, name


def submit_transfer(
    fac: Any, user: str, system: str, what: str, commands: str, account: str | None, *, run_seconds: float = 0.0
) -> tuple[SimJob, dict[str, Any]]:
    """Queue a transfer job running ``commands``; (job, the ``transferJob`` wire object)."""
    workdir = f"/scratch/{user}"
    tag = uuid.uuid4()
    out = f"{workdir}/.f7t_file_handling_job_{tag}.log"
    err = f"{workdir}/.f7t_file_handling_job_error_{tag}.log"
    script = f'#!/bin/bash\n{DIRECTIVES}\necho "$(date -u) {what} Job (id:${{SLURM_JOB_ID}})"\n{commands}'
    sysm = fac.systems[system]
    try:
        job = sysm.submit(
            name=f"f7t_{what.lower().replace(' ', '_')}",
            user=user,
            script=script,
            nodes=1,
            walltime_s=WALLTIME_S,
            account=account or next(iter(fac.settings.projects), None),
            run_seconds=run_seconds,
            workdir=workdir,
            stdout_path=out,
            stderr_path=err,
            extra={"transfer": what},
        )
    except SubmitError as exc:
        raise FirecrestError(
            400,
            f"Unexpected Slurm command response. exit_status:1 std_err:sbatch: error: "
            f"Batch job submission failed: {exc}\n",
            user=user,
        ) from None
    wire = {"jobId": job.id, "system": system, "workingDirectory": workdir, "logs": {"outputLog": out, "errorLog": err}}
    return job, wire


def _outcome(command: str, done: str, failed: str) -> str:
    return (
        f'if {command}; then\n    echo "$(date -u) {done}"\nelse\n    echo "$(date -u) {failed}" >&2\n    exit 1\nfi\n'
    )


@post("/filesystem/{system_name:str}/transfer/cp", status_code=201)
async def post_cp(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    body = decode(await request.body(), ("sourcePath", "targetPath"))
    fac, user, system = _context(request, system_name, body.source_path)
    src, dst = _absolute(body.source_path, "sourcePath", user), _absolute(body.target_path, "targetPath", user)
    flags = "-rL" if body.dereference else "-rP"
    cmd = _outcome(
        f"cp {flags} -- {shlex.quote(src)} {shlex.quote(dst)}",
        "Files were successfully copied.",
        "Unable to copy files",
    )
    _, wire = submit_transfer(fac, user, system, "Copy Files", cmd, body.account)
    return respond({"transferJob": wire}, user, 201)


@post("/filesystem/{system_name:str}/transfer/mv", status_code=201)
async def post_mv(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    body = decode(await request.body(), ("sourcePath", "targetPath"))
    fac, user, system = _context(request, system_name, body.source_path)
    src, dst = _absolute(body.source_path, "sourcePath", user), _absolute(body.target_path, "targetPath", user)
    cmd = _outcome(
        f"mv -- {shlex.quote(src)} {shlex.quote(dst)}", "Files were successfully moved.", "Unable to move files"
    )
    _, wire = submit_transfer(fac, user, system, "Move Files", cmd, body.account)
    return respond({"transferJob": wire}, user, 201)


@delete("/filesystem/{system_name:str}/transfer/rm", status_code=200, sync_to_thread=False)
def delete_rm(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    path = request.query_params.get("path")
    fac, user, system = _context(request, system_name, path)
    target = _absolute(path, "path", user)
    cmd = _outcome(
        f"[ -e {shlex.quote(target)} ] && rm -rf -- {shlex.quote(target)}",
        "Files were successfully deleted.",
        f"Unable to delete {shlex.quote(target)}: No such file or directory",
    )
    _, wire = submit_transfer(fac, user, system, "Delete Files", cmd, request.query_params.get("account"))
    return respond({"transferJob": wire}, user, 200)


def tar_create(body: TransferBody, src: str, dst: str) -> str:
    flags = "c" + COMPRESSION[body.compression] + ("h" if body.dereference else "") + "f"
    base, name = posixpath.split(src.rstrip("/") or "/")
    return f"tar -{flags} {shlex.quote(dst)} -C {shlex.quote(base or '/')} {shlex.quote(name or '.')}"


def tar_extract(body: TransferBody, src: str, dst: str) -> str:
    return f"tar -x{COMPRESSION[body.compression]}f {shlex.quote(src)} -C {shlex.quote(dst)}"


@post("/filesystem/{system_name:str}/transfer/compress", status_code=201)
async def post_compress(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    body = decode(await request.body(), ("sourcePath", "targetPath"))
    fac, user, system = _context(request, system_name, body.source_path)
    src, dst = _absolute(body.source_path, "sourcePath", user), _absolute(body.target_path, "targetPath", user)
    cmd = _outcome(tar_create(body, src, dst), "Files were successfully compressed.", "Unable to compress files")
    _, wire = submit_transfer(fac, user, system, "Compress Files", cmd, body.account)
    return respond({"transferJob": wire}, user, 201)


@post("/filesystem/{system_name:str}/transfer/extract", status_code=201)
async def post_extract(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    body = decode(await request.body(), ("sourcePath", "targetPath"))
    fac, user, system = _context(request, system_name, body.source_path)
    src, dst = _absolute(body.source_path, "sourcePath", user), _absolute(body.target_path, "targetPath", user)
    cmd = _outcome(tar_extract(body, src, dst), "Files were successfully extracted.", "Unable to extract files")
    _, wire = submit_transfer(fac, user, system, "Extract Files", cmd, body.account)
    return respond({"transferJob": wire}, user, 201)


def _method(body: TransferBody, user: str) -> dict[str, Any]:
    directives = body.transfer_directives or {}
    method = directives.get("transferMethod")
    if method is None:
        raise field_error("body", "transferDirectives.transferMethod", "Field required")
    if method != "s3":
        raise FirecrestError(400, f"Transfer method '{method}' is not available on this system (s3 only).", user=user)
    return directives


@post("/filesystem/{system_name:str}/transfer/upload", status_code=201)
async def post_upload(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    body = decode(await request.body(), ("sourcePath", "transferDirectives"))
    fac, user, system = _context(request, system_name, body.source_path)
    target = _absolute(body.source_path, "sourcePath", user)
    size = _method(body, user).get("fileSize")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise field_error("body", "transferDirectives.fileSize", "Input should be a valid integer")
    staging: StagingArea = fac.staging
    if size > MAX_OBJECT:
        raise FirecrestError(413, f"File to upload is too large (limit {MAX_OBJECT} bytes).", user=user)
    obj = staging.new(size)
    cmd = f"f7t-stage in {obj.token} {shlex.quote(target)}\n"
    # the job waits (up to its walltime) for the client to complete the upload
    job, wire = submit_transfer(fac, user, system, "Ingress File Transfer", cmd, body.account, run_seconds=WALLTIME_S)
    obj.job = (system, job.id)
    directives = {"transferMethod": "s3", **urls(str(request.base_url), obj, staging), "downloadUrl": None}
    return respond({"transferJob": wire, "transferDirectives": directives}, user, 201)


@post("/filesystem/{system_name:str}/transfer/download", status_code=201)
async def post_download(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    body = decode(await request.body(), ("sourcePath", "transferDirectives"))
    fac, user, system = _context(request, system_name, body.source_path)
    source = _absolute(body.source_path, "sourcePath", user)
    _method(body, user)
    staging: StagingArea = fac.staging
    obj = staging.new(0)
    cmd = f"f7t-stage out {obj.token} {shlex.quote(source)}\n"
    _, wire = submit_transfer(fac, user, system, "Egress File Transfer", cmd, body.account)
    url = f"{str(request.base_url).rstrip('/')}/_sim/s3/{obj.token}"
    directives = {
        "transferMethod": "s3",
        "downloadUrl": url,
        "partsUploadUrls": None,
        "completeUploadUrl": None,
        "maxPartSize": None,
    }
    return respond({"transferJob": wire, "transferDirectives": directives}, user, 201)


ROUTES = [post_cp, post_mv, delete_rm, post_compress, post_extract, post_upload, post_download]
