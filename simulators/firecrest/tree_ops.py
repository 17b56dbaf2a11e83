"""``/filesystem/{system}/ops/{symlink,chown,compress,extract}``: the synchronous tree
operations of FirecREST v2 over the VirtualFS, with the remote command's words on failure.

compress/extract run directly (204); a real deployment falls back to a transfer job when
the command times out (408), which the simulator never needs."""

from __future__ import annotations

import posixpath
import re

import msgspec
from litestar import Response, post, put
from litestar.params import FromPath

from simulators.common import archive
from simulators.firecrest.common import Req, filesystem_context, no_content, respond
from simulators.firecrest.errors import FirecrestError, field_error
from simulators.firecrest.filesystem import file_wire, fs_error
from simulators.firecrest.transfer import COMPRESSION, decode


class _LinkBody(msgspec.Struct):
    sourcePath: str | None = None
    source_path: str | None = None
    linkPath: str | None = None
    link_path: str | None = None


class _ChownBody(msgspec.Struct):
    path: str | None = None
    sourcePath: str | None = None
    source_path: str | None = None
    owner: str = ""
    group: str = ""


def _decode(raw: bytes, kind: type[msgspec.Struct]) -> msgspec.Struct:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError:
        raise field_error("body", "", "JSON decode error") from None
    except msgspec.ValidationError as exc:
        raise field_error("body", str(exc).rsplit("$.", 1)[-1].rstrip("`"), str(exc).split(" - ")[0]) from None


def _absolute(path: str, user: str) -> str:
    if not path.startswith("/"):
        raise FirecrestError(400, f"The provided path ({path}) is not an absolute path.", user=user)
    return path


@post("/filesystem/{system_name:str}/ops/symlink", status_code=201)
async def post_symlink(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    body = _decode(await request.body(), _LinkBody)
    assert isinstance(body, _LinkBody)
    source = body.sourcePath or body.source_path
    fac, user, _ = filesystem_context(request, system_name, source)
    assert source is not None
    link = body.linkPath or body.link_path
    if not link:
        raise field_error("body", "linkPath", "Field required")
    _absolute(source, user)
    _absolute(link, user)
    try:
        node = fac.fs.symlink(source, link)
    except OSError as exc:
        raise fs_error(exc, "ln: failed to create symbolic link", link, user) from None
    return respond({"output": file_wire(node, link, fac.fs)}, user, 201)


_NAME = re.compile(r"^[a-z_][a-z0-9_-]*\$?$", re.I)


@put("/filesystem/{system_name:str}/ops/chown")
async def put_chown(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    body = _decode(await request.body(), _ChownBody)
    assert isinstance(body, _ChownBody)
    path = body.path or body.sourcePath or body.source_path
    fac, user, _ = filesystem_context(request, system_name, path)
    assert path is not None
    _absolute(path, user)
    for kind, value in (("user", body.owner), ("group", body.group)):
        if value and not _NAME.match(value):
            raise FirecrestError(
                400,
                f"Remote process failed with exit status:1 and error message:chown: invalid {kind}: '{value}'",
                user=user,
            )
    try:
        node = fac.fs.stat(path)
    except OSError as exc:
        raise fs_error(exc, "chown: cannot access", path, user) from None
    groups = {fac.settings.user, *fac.settings.projects}
    # an unprivileged user may only give a file to themself and to groups they belong to
    if (body.owner and body.owner != user) or (body.group and body.group not in groups) or node.owner == "root":
        raise FirecrestError(
            403,
            f"Remote process failed with exit status:1 and error message:chown: changing ownership of "
            f"'{path}': Operation not permitted",
            user=user,
        )
    node.owner = body.owner or node.owner
    node.group = body.group or node.group
    return respond({"output": file_wire(node, path, fac.fs)}, user)


@post("/filesystem/{system_name:str}/ops/compress", status_code=200)  # the Response sets 204
async def post_compress(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    body = decode(await request.body(), ("sourcePath", "targetPath"))
    fac, user, _ = filesystem_context(request, system_name, body.source_path)
    src, dst = _absolute(body.source_path or "", user), _absolute(body.target_path or "", user)
    base, name = posixpath.split(src.rstrip("/") or "/")
    names = [name or "."]
    if body.match_pattern:
        try:
            rx = re.compile(body.match_pattern)
        except re.error:
            raise field_error("body", "matchPattern", "Invalid regular expression") from None
        names = [n for n in _files_under(fac.fs, base, name) if rx.search("./" + n)]
    try:
        if not fac.fs.exists(src):
            raise FileNotFoundError(src)
        data = archive.create(
            fac.fs, base or "/", names, {"z": "gz", "j": "bz2", "J": "xz", "": ""}[COMPRESSION[body.compression]]
        )
        fac.fs.write(dst, data)
    except archive.ArchiveError as exc:
        raise FirecrestError(
            400, f"Remote process failed with exit status:2 and error message:{exc}", user=user
        ) from None
    except OSError as exc:
        raise fs_error(exc, "tar: cannot open", src, user) from None
    return no_content(user)


def _files_under(fs: object, base: str, name: str) -> list[str]:
    out: list[str] = []
    stack = [name]
    while stack:
        rel = stack.pop()
        node = fs.lstat(posixpath.join(base, rel))  # type: ignore[attr-defined]
        if node.is_dir and not node.is_link:
            stack.extend(f"{rel}/{child}" for child in sorted(node.children, reverse=True))
        else:
            out.append(rel)
    return out


@post("/filesystem/{system_name:str}/ops/extract", status_code=200)  # the Response sets 204
async def post_extract(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    body = decode(await request.body(), ("sourcePath", "targetPath"))
    fac, user, _ = filesystem_context(request, system_name, body.source_path)
    src, dst = _absolute(body.source_path or "", user), _absolute(body.target_path or "", user)
    try:
        data = fac.fs.read(src)
        if not fac.fs.stat(dst).is_dir:
            raise NotADirectoryError(dst)
        archive.extract(fac.fs, data, dst)
    except archive.ArchiveError as exc:
        raise FirecrestError(
            400, f"Remote process failed with exit status:2 and error message:{exc}", user=user
        ) from None
    except OSError as exc:
        raise fs_error(exc, "tar: cannot open", src, user) from None
    return no_content(user)


ROUTES = [post_symlink, put_chown, post_compress, post_extract]
