"""IRI v2's filesystem reads and permission changes: POST with a JSON body (the v2 spec's
``Post*Request`` schemas), where v1 takes GET with a query (PUT for chmod/chown).  Asked with
GET, these paths answer 405, as the reference server does.  Writes (mkdir, mv, cp, upload, ...)
and the task endpoints are the same in both versions (``routes_files``)."""

from __future__ import annotations

import posixpath
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.params import FromPath

from simulators.iri import catalog, fsops
from simulators.iri.common import API_V2, fac, read_json
from simulators.iri.problems import Problem
from simulators.iri.routes_files import _fs_path, _one_of, _run

Positive = Annotated[int, msgspec.Meta(ge=1)]


class PathOnly(msgspec.Struct):
    path: str


class LsBody(PathOnly):
    showHidden: bool = False
    numericUid: bool = False
    recursive: bool = False
    dereference: bool = False


class StatBody(PathOnly):
    dereference: bool = False


class HeadBody(PathOnly):
    nbytes: int | None = msgspec.field(default=None, name="bytes")
    lines: int | None = None
    skipTrailing: bool = False


class TailBody(PathOnly):
    nbytes: Positive | None = msgspec.field(default=None, name="bytes")
    lines: Positive | None = None
    skipHeading: bool = False


class ViewBody(PathOnly):
    size: Annotated[int, msgspec.Meta(ge=1, le=fsops.OPS_SIZE_LIMIT)] = fsops.OPS_SIZE_LIMIT
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0


class ChmodBody(PathOnly):
    mode: str


class ChownBody(PathOnly):
    owner: str = ""
    group: str = ""


def _v2(op: str) -> str:
    return f"{API_V2}/filesystem/{op}/{{resource_id:str}}"


@post(_v2("ls"), status_code=200)
async def ls(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f, b = fac(request), read_json(await request.body(), LsBody)
    p = _fs_path(f, resource_id, b.path)
    args = {"path": p, "show_hidden": b.showHidden, "recursive": b.recursive}
    return _run(request, resource_id, "ls", args, lambda: fsops.ls(f.fs, p, b.showHidden, b.recursive))


@post(_v2("head"), status_code=200)
async def head(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f, b = fac(request), read_json(await request.body(), HeadBody)
    p = _fs_path(f, resource_id, b.path)
    _one_of(b.nbytes, b.lines)
    args = {"path": p, "file_bytes": b.nbytes, "lines": b.lines}
    return _run(
        request, resource_id, "head", args, lambda: fsops.head(f.fs, p, b.nbytes, b.lines, b.skipTrailing)
    )


@post(_v2("tail"), status_code=200)
async def tail(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f, b = fac(request), read_json(await request.body(), TailBody)
    p = _fs_path(f, resource_id, b.path)
    _one_of(b.nbytes, b.lines)
    args = {"path": p, "file_bytes": b.nbytes, "lines": b.lines}
    return _run(
        request, resource_id, "tail", args, lambda: fsops.tail(f.fs, p, b.nbytes, b.lines, b.skipHeading)
    )


@post(_v2("view"), status_code=200)
async def view(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f, b = fac(request), read_json(await request.body(), ViewBody)
    p = _fs_path(f, resource_id, b.path)
    args = {"path": p, "size": b.size, "offset": b.offset}
    return _run(request, resource_id, "view", args, lambda: fsops.view(f.fs, p, b.size, b.offset))


@post(_v2("stat"), status_code=200)
async def stat(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f, b = fac(request), read_json(await request.body(), StatBody)
    p = _fs_path(f, resource_id, b.path)
    args = {"path": p, "dereference": b.dereference}
    return _run(request, resource_id, "stat", args, lambda: fsops.stat(f.fs, p, f.settings.uid))


def _download(fs: Any, path: str) -> dict[str, Any]:
    """The reference server's v2 answer: base64 in ``output``, with no ``encoding`` key."""
    result = fsops.download(fs, path)
    result.pop("encoding", None)
    return result


def _path_only(command: str, fn: Any) -> Any:
    @post(_v2(command), status_code=200, name=f"iri-v2-{command}")
    async def handler(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
        f, b = fac(request), read_json(await request.body(), PathOnly)
        p = _fs_path(f, resource_id, b.path)
        return _run(request, resource_id, command, {"path": p}, lambda: fn(f, p))

    return handler


checksum = _path_only("checksum", lambda f, p: fsops.checksum(f.fs, p))
file_type = _path_only("file", lambda f, p: fsops.file_type(f.fs, p))
download = _path_only("download", lambda f, p: _download(f.fs, p))


@post(_v2("rm"), status_code=200)
async def rm(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f, b = fac(request), read_json(await request.body(), PathOnly)
    p = _fs_path(f, resource_id, b.path)
    if p in catalog.FILESYSTEMS[f.resources[resource_id].name] or posixpath.dirname(p) in (
        "/home",
        "/eagle",
    ):
        raise Problem(403, f"rm: refusing to remove '{p}'")
    return _run(request, resource_id, "rm", {"path": p}, lambda: fsops.rm(f.fs, p))


@post(_v2("chmod"), status_code=200)
async def chmod(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f, b = fac(request), read_json(await request.body(), ChmodBody)
    p = _fs_path(f, resource_id, b.path)
    args = {"path": p, "mode": b.mode}
    return _run(request, resource_id, "chmod", args, lambda: fsops.chmod(f.fs, p, b.mode))


@post(_v2("chown"), status_code=200)
async def chown(request: Request[Any, Any, Any], resource_id: FromPath[str]) -> Response[bytes]:
    f, b = fac(request), read_json(await request.body(), ChownBody)
    p = _fs_path(f, resource_id, b.path)
    args = {"path": p, "owner": b.owner, "group": b.group}
    return _run(request, resource_id, "chown", args, lambda: fsops.chown(f.fs, p, b.owner, b.group))


ROUTES = [ls, head, tail, view, stat, checksum, file_type, download, rm, chmod, chown]
