"""Filesystem endpoints (each answers with a task id, as at ALCF) and the task endpoints.

The command runs when it is submitted, so its outcome follows the order of requests; the
task shows ``pending`` for a short while (scaled with ``time_scale``) before its result, so
clients have to poll as they would at ALCF."""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.params import FromPath, FromQuery, MultipartBody, QueryParameter

from simulators.common.files import normalize
from simulators.iri import catalog, fsops
from simulators.iri.common import (
    API,
    base_url,
    both,
    fac,
    is_v2,
    ok,
    read_json,
    resource_or_404,
    user_of,
)
from simulators.iri.problems import Problem
from simulators.iri.state import IriFacility, Task

TASK_LATENCY_S = 0.2  # before time_scale
Flag = FromQuery[bool]  # default False on each handler
Num = FromQuery[int | None]  # default None on each handler
ERRNO_STATUS = {
    FileNotFoundError: 404,
    NotADirectoryError: 400,
    IsADirectoryError: 400,
    FileExistsError: 409,
    PermissionError: 403,
}


class PathBody(msgspec.Struct):
    path: str | None = None
    source_path: str | None = None  # the reference implementation accepts either name

    @property
    def source(self) -> str | None:
        return self.path or self.source_path


class MkdirBody(PathBody):
    parent: bool = False


class ChmodBody(PathBody):
    mode: str | None = None  # required by the spec: see _required


class ChownBody(PathBody):
    owner: str = ""
    group: str = ""


class SymlinkBody(PathBody):
    link_path: str | None = None  # required by the spec: see _required


class TargetBody(PathBody):
    target_path: str = ""
    dereference: bool = False


class CompressBody(TargetBody):
    match_pattern: str | None = None
    compression: str | None = None  # v1: gzip by default; v2: its URN (see _compression)


def _fs_path(f: IriFacility, resource_id: str, path: str | None) -> str:
    """The canonical path inside the filesystem resource; ALCF refuses paths elsewhere."""
    res = resource_or_404(f, resource_id, "filesystem")
    if not path:
        raise Problem(
            400, "path is required", invalid_params=[{"name": "path", "reason": "required"}]
        )
    prefixes = catalog.FILESYSTEMS[res.name]
    try:
        norm = normalize(path)
    except FileNotFoundError:
        raise Problem(400, f"invalid path: {path!r}") from None
    for prefix in prefixes:
        if norm == prefix or norm.startswith(prefix + "/"):
            return prefixes[0] + norm[len(prefix) :]
    raise Problem(
        400,
        f"All paths must start with {' or '.join(prefixes)}",
        invalid_params=[{"name": "path", "reason": f"not under {' or '.join(prefixes)}"}],
    )


def _run(
    request: Request[Any, Any, Any],
    resource_id: str,
    command: str,
    args: dict[str, Any],
    op: Callable[[], dict[str, Any]],
    status: int = 200,
) -> Response[bytes]:
    """Run a filesystem command now and answer with its task."""
    f = fac(request)
    user = user_of(request)
    if f.is_down("filesystem"):
        incident = f.open_incidents.get("filesystem")
        ref = f" (incident {incident.id})" if incident else ""
        raise Problem(503, f"filesystem is down{ref}", slug="resource-unavailable")
    try:
        result, good = op(), True
    except (OSError, ValueError, KeyError) as exc:
        code = next((s for t, s in ERRNO_STATUS.items() if isinstance(exc, t)), 400)
        result, good = {"output": f"Error: {command}: {_describe(exc)}", "status_code": code}, False
    task = Task(
        id=str(uuid.uuid4()),
        user=user,
        router="filesystem",
        command=command,
        args={"resource_id": resource_id, **args},
        ok=good,
        result=result,
        ready_at=f.clock() + TASK_LATENCY_S * f.settings.time_scale,
    )
    f.add_task(task)
    return ok({"task_id": task.id, "task_uri": f"{base_url(request)}/task/{task.id}"}, status)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.args:
        what = exc.filename or exc.args[-1]
        reason = {
            FileNotFoundError: "No such file or directory",
            NotADirectoryError: "Not a directory",
            IsADirectoryError: "Is a directory",
            FileExistsError: "File exists",
            PermissionError: "Operation not permitted",
        }.get(type(exc), exc.strerror or str(exc))
        return f"cannot access '{what}': {reason}"
    return str(exc)


def _required(value: str | None, name: str) -> str:
    """A body field the spec requires: missing is the reference server's 422."""
    if value is None:
        raise Problem(
            422, f"{name} is required", invalid_params=[{"name": name, "reason": "Field required"}]
        )
    return value


def _one_of(nbytes: int | None, lines: int | None) -> None:
    if (nbytes is None) == (lines is None):
        raise Problem(400, "Exactly one of `bytes` or `lines` must be specified.")
    if (nbytes is not None and nbytes < 0) or (lines is not None and lines < 0):
        raise Problem(400, "`bytes` and `lines` must not be negative.")


@get(f"{API}/filesystem/ls/{{resource_id:str}}", sync_to_thread=False)
def ls(
    request: Request[Any, Any, Any],
    resource_id: FromPath[str],
    path: FromQuery[str],
    show_hidden: Annotated[bool, QueryParameter(name="showHidden")] = False,
    numeric_uid: Annotated[bool, QueryParameter(name="numericUid")] = False,
    recursive: Flag = False,
    dereference: Flag = False,
) -> Response[bytes]:
    f = fac(request)
    p = _fs_path(f, resource_id, path)
    return _run(
        request,
        resource_id,
        "ls",
        {"path": p, "show_hidden": show_hidden, "recursive": recursive},
        lambda: fsops.ls(f.fs, p, show_hidden, recursive),
    )


@get(f"{API}/filesystem/head/{{resource_id:str}}", sync_to_thread=False)
def head(
    request: Request[Any, Any, Any],
    resource_id: FromPath[str],
    path: FromQuery[str],
    lines: Num = None,
    nbytes: Annotated[int | None, QueryParameter(name="bytes")] = None,
    skip: Annotated[bool, QueryParameter(name="skipTrailing")] = False,
) -> Response[bytes]:
    f = fac(request)
    p = _fs_path(f, resource_id, path)
    _one_of(nbytes, lines)
    return _run(
        request,
        resource_id,
        "head",
        {"path": p, "file_bytes": nbytes, "lines": lines},
        lambda: fsops.head(f.fs, p, nbytes, lines, skip),
    )


@get(f"{API}/filesystem/tail/{{resource_id:str}}", sync_to_thread=False)
def tail(
    request: Request[Any, Any, Any],
    resource_id: FromPath[str],
    path: FromQuery[str],
    lines: Num = None,
    nbytes: Annotated[int | None, QueryParameter(name="bytes")] = None,
    skip: Annotated[bool, QueryParameter(name="skipHeading")] = False,
) -> Response[bytes]:
    f = fac(request)
    p = _fs_path(f, resource_id, path)
    _one_of(nbytes, lines)
    return _run(
        request,
        resource_id,
        "tail",
        {"path": p, "file_bytes": nbytes, "lines": lines},
        lambda: fsops.tail(f.fs, p, nbytes, lines, skip),
    )


@get(f"{API}/filesystem/view/{{resource_id:str}}", sync_to_thread=False)
def view(
    request: Request[Any, Any, Any],
    resource_id: FromPath[str],
    path: FromQuery[str],
    size: Annotated[int, QueryParameter(ge=1, le=fsops.OPS_SIZE_LIMIT)] = fsops.OPS_SIZE_LIMIT,
    offset: Annotated[int, QueryParameter(ge=0)] = 0,
) -> Response[bytes]:
    f = fac(request)
    p = _fs_path(f, resource_id, path)
    return _run(
        request,
        resource_id,
        "view",
        {"path": p, "size": size, "offset": offset},
        lambda: fsops.view(f.fs, p, size, offset),
    )


def _simple(command: str, fn: Callable[..., dict[str, Any]]) -> Any:
    @get(
        f"{API}/filesystem/{command}/{{resource_id:str}}",
        sync_to_thread=False,
        name=f"iri-{command}",
    )
    def handler(
        request: Request[Any, Any, Any], resource_id: FromPath[str], path: FromQuery[str]
    ) -> Response[bytes]:
        f = fac(request)
        p = _fs_path(f, resource_id, path)
        return _run(request, resource_id, command, {"path": p}, lambda: fn(f, p))

    return handler


checksum = _simple("checksum", lambda f, p: fsops.checksum(f.fs, p))
file_type = _simple("file", lambda f, p: fsops.file_type(f.fs, p))
download = _simple("download", lambda f, p: fsops.download(f.fs, p))


@get(f"{API}/filesystem/stat/{{resource_id:str}}", sync_to_thread=False)
def stat(
    request: Request[Any, Any, Any],
    resource_id: FromPath[str],
    path: FromQuery[str],
    dereference: Flag = False,
) -> Response[bytes]:
    f = fac(request)
    p = _fs_path(f, resource_id, path)
    return _run(
        request,
        resource_id,
        "stat",
        {"path": p, "dereference": dereference},
        lambda: fsops.stat(f.fs, p, f.settings.uid),
    )


@delete(f"{API}/filesystem/rm/{{resource_id:str}}", status_code=200)
async def rm(
    request: Request[Any, Any, Any], resource_id: FromPath[str], path: FromQuery[str]
) -> Response[bytes]:
    f = fac(request)
    p = _fs_path(f, resource_id, path)
    if p in catalog.FILESYSTEMS[f.resources[resource_id].name] or posixpath.dirname(p) in (
        "/home",
        "/eagle",
    ):
        raise Problem(403, f"rm: refusing to remove '{p}'")
    return _run(request, resource_id, "rm", {"path": p}, lambda: fsops.rm(f.fs, p))


@post(both("/filesystem/mkdir/{resource_id:str}"), status_code=201)
async def mkdir(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f = fac(request)
    body = read_json(await request.body(), MkdirBody)
    p = _fs_path(f, resource_id, body.source)
    return _run(
        request,
        resource_id,
        "mkdir",
        {"path": p, "parent": body.parent},
        lambda: fsops.mkdir(f.fs, p, body.parent),
        201,
    )


@post(both("/filesystem/symlink/{resource_id:str}"), status_code=201)
async def symlink(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f = fac(request)
    body = read_json(await request.body(), SymlinkBody)
    link_path = _required(body.link_path, "link_path")
    p = _fs_path(f, resource_id, body.source)
    link = _fs_path(f, resource_id, link_path)

    def unsupported() -> dict[str, Any]:  # the simulated tree has no links
        raise OSError(95, "Operation not supported", link)

    return _run(request, resource_id, "symlink", {"path": p, "link_path": link}, unsupported, 201)


@put(f"{API}/filesystem/chmod/{{resource_id:str}}", status_code=200)
async def chmod(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f = fac(request)
    body = read_json(await request.body(), ChmodBody)
    mode = _required(body.mode, "mode")
    p = _fs_path(f, resource_id, body.source)
    return _run(
        request,
        resource_id,
        "chmod",
        {"path": p, "mode": mode},
        lambda: fsops.chmod(f.fs, p, mode),
    )


@put(f"{API}/filesystem/chown/{{resource_id:str}}", status_code=200)
async def chown(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f = fac(request)
    body = read_json(await request.body(), ChownBody)
    p = _fs_path(f, resource_id, body.source)
    return _run(
        request,
        resource_id,
        "chown",
        {"path": p, "owner": body.owner, "group": body.group},
        lambda: fsops.chown(f.fs, p, body.owner, body.group),
    )


def _compression(request: Request[Any, Any, Any], value: str | None) -> str:
    """v1 names the compression (``gzip``), v2 gives a URN (``urn:doe-iri:compression:gzip``,
    also its default); the tar mode either way."""
    urn = "urn:doe-iri:compression:"
    if is_v2(request):
        value = value or f"{urn}gzip"
        word = value.removeprefix(urn) if value.startswith(urn) else None
        allowed = ", ".join(urn + m for m in fsops.TAR_MODES)
    else:
        word = value or "gzip"
        allowed = ", ".join(fsops.TAR_MODES)
    if word not in fsops.TAR_MODES:
        raise Problem(
            422,
            f"compression must be one of {allowed}",
            invalid_params=[{"name": "compression", "reason": "unknown compression"}],
        )
    return word


def _target(
    command: str, fn: Callable[[IriFacility, str, str, Any], dict[str, Any]], body_type: type
) -> Any:
    @post(both(f"/filesystem/{command}/{{resource_id:str}}"), status_code=201, name=f"iri-{command}")
    async def handler(
        request: Request[Any, Any, Any], resource_id: FromPath[str]
    ) -> Response[bytes]:
        f = fac(request)
        body = read_json(await request.body(), body_type)
        if not body.target_path:
            raise Problem(
                422,
                "target_path is required",
                invalid_params=[{"name": "target_path", "reason": "Field required"}],
            )
        if isinstance(body, CompressBody):
            body.compression = _compression(request, body.compression)
        p = _fs_path(f, resource_id, body.source)
        t = _fs_path(f, resource_id, body.target_path)
        return _run(
            request,
            resource_id,
            command,
            {"path": p, "target_path": t},
            lambda: fn(f, p, t, body),
            201,
        )

    return handler


mv = _target("mv", lambda f, p, t, b: fsops.mv(f.fs, p, t), TargetBody)
cp = _target("cp", lambda f, p, t, b: fsops.cp(f.fs, p, t), TargetBody)
compress = _target(
    "compress",
    lambda f, p, t, b: fsops.compress(f.fs, p, t, b.compression, b.match_pattern),
    CompressBody,
)
extract = _target(
    "extract", lambda f, p, t, b: fsops.extract(f.fs, p, t, b.compression), CompressBody
)


@post(both("/filesystem/upload/{resource_id:str}"), status_code=200)
async def upload(
    request: Request[Any, Any, Any],
    resource_id: FromPath[str],
    path: FromQuery[str],
    data: MultipartBody[dict[str, Any]],
) -> Response[bytes]:
    f = fac(request)
    p = _fs_path(f, resource_id, path)
    item = data.get("file")
    if item is None or not hasattr(item, "read"):
        raise Problem(
            422,
            "file is required (multipart/form-data field 'file')",
            invalid_params=[{"name": "file", "reason": "Field required"}],
        )
    content = await item.read()
    if len(content) > fsops.OPS_SIZE_LIMIT:
        raise Problem(422, "File to upload is too large.")
    return _run(
        request,
        resource_id,
        "upload",
        {"path": p, "size": len(content)},
        lambda: fsops.upload(f.fs, p, content),
    )


# -- tasks ---------------------------------------------------------------------------------
def task_body(f: IriFacility, t: Task) -> dict[str, Any]:
    ready = f.clock() >= t.ready_at
    return {
        "id": t.id,
        "status": ("completed" if t.ok else "failed") if ready else "pending",
        "result": t.result if ready else None,
        "command": {"router": t.router, "command": t.command, "args": t.args},
    }


def _task_or_404(
    request: Request[Any, Any, Any], task_id: str
) -> tuple[IriFacility, Task]:
    user = user_of(request)
    f = fac(request)
    t = f.tasks.get(task_id)
    if t is None or t.user != user:
        raise Problem(404, f"Task {task_id} not found")
    return f, t


@get(both("/task/{task_id:str}"), sync_to_thread=False)
def get_task(request: Request[Any, Any, Any], task_id: FromPath[str]) -> Response[bytes]:
    f, t = _task_or_404(request, task_id)
    return ok(task_body(f, t))


@get(both("/task"), sync_to_thread=False)
def get_tasks(request: Request[Any, Any, Any]) -> Response[bytes]:
    user = user_of(request)
    f = fac(request)
    return ok([task_body(f, t) for t in f.tasks.values() if t.user == user])


@delete(both("/task/{task_id:str}"), status_code=200)
async def delete_task(request: Request[Any, Any, Any], task_id: FromPath[str]) -> Response[bytes]:
    f, t = _task_or_404(request, task_id)
    del f.tasks[t.id]
    return ok(f"Task {task_id} deleted successfully")


ROUTES = [
    ls,
    head,
    tail,
    view,
    checksum,
    file_type,
    download,
    stat,
    rm,
    mkdir,
    symlink,
    chmod,
    chown,
    mv,
    cp,
    compress,
    extract,
    upload,
    get_task,
    get_tasks,
    delete_task,
]
