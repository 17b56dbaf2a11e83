"""``/filesystem/{system}/ops/*``: small, synchronous file operations over the VirtualFS.

Failures read like the remote command's stderr, with the status FirecREST v2 derives from it
(``BaseCommandErrorHandling``: "No such file or directory" 404, "Permission denied" 403,
"File exists" 400).  The simulator maps every other failure to 400, never 500."""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import stat as statmod
import time
import zlib
from typing import Any

import msgspec
from litestar import Response, delete, get, post, put
from litestar.datastructures import UploadFile
from litestar.params import FromPath

from simulators.common.files import Node, VirtualFS, normalize
from simulators.firecrest.common import Req, filesystem_context, no_content, query_bool, respond
from simulators.firecrest.errors import FirecrestError, field_error
from simulators.firecrest.state import OPS_MAX_FILE_SIZE

_ERRNO_TEXT: list[tuple[type[OSError], int, str]] = [
    (FileNotFoundError, 404, "No such file or directory"),
    (PermissionError, 403, "Permission denied"),
    (FileExistsError, 400, "File exists"),
    (IsADirectoryError, 400, "Is a directory"),
    (NotADirectoryError, 400, "Not a directory"),
]


def fs_error(exc: OSError, what: str, path: str, user: str) -> FirecrestError:
    """``what`` is the command's stderr prefix, e.g. "ls: cannot access"."""
    status, text = next(
        ((st, tx) for cls, st, tx in _ERRNO_TEXT if isinstance(exc, cls)),
        (400, exc.strerror or "Invalid argument"),
    )
    code = 2 if status == 404 else 1
    return FirecrestError(
        status,
        f"Remote process failed with exit status:{code} and error message:{what} '{path}': {text}",
        user=user,
    )


def _int(q: Any, key: str, user: str) -> int | None:
    raw = q.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise field_error(
            "query", key, "Input should be a valid integer, unable to parse string as an integer"
        ) from None


def _path(request: Req, system_name: str) -> tuple[Any, str, str]:
    path = request.query_params.get("path")
    fac, user, _ = filesystem_context(request, system_name, path)
    assert path is not None
    if not path.startswith("/"):
        raise FirecrestError(400, f"The provided path ({path}) is not an absolute path.", user=user)
    return fac, user, path


def _owner(fs: VirtualFS, node: Node, numeric: bool, uid: int) -> tuple[str, str]:
    if numeric:
        return (str(uid), str(uid)) if node.owner != "root" else ("0", "0")
    return node.owner, node.group


def file_wire(
    node: Node, name: str, fs: VirtualFS, *, numeric: bool = False, uid: int = 0
) -> dict[str, Any]:
    user, group = _owner(fs, node, numeric, uid)
    return {
        "name": name,
        "type": "l" if node.is_link else "d" if node.is_dir else "-",
        "linkTarget": node.link_target,
        "user": user,
        "group": group,
        "permissions": "rwxrwxrwx" if node.is_link else node.permissions,
        "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(node.mtime)),
        "size": str(node.size),
    }


def _listing(
    fs: VirtualFS,
    path: str,
    *,
    hidden: bool,
    recursive: bool,
    numeric: bool,
    uid: int,
    prefix: str = "",
    follow: bool = False,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for child in fs.ls(path, hidden=hidden):
        shown = child
        if follow and child.is_link:  # ls -L: the target's attributes (a dangling link stays)
            with contextlib.suppress(OSError):
                shown = fs.stat(posixpath.join(path, child.name))
        out.append(file_wire(shown, prefix + child.name, fs, numeric=numeric, uid=uid))
        if recursive and child.is_dir:  # never through a link: no loops
            out += _listing(
                fs,
                posixpath.join(path, child.name),
                hidden=hidden,
                recursive=True,
                numeric=numeric,
                uid=uid,
                prefix=f"{prefix}{child.name}/",
                follow=follow,
            )
    return out


@get("/filesystem/{system_name:str}/ops/ls", sync_to_thread=False)
def get_ls(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    fac, user, path = _path(request, system_name)
    q = request.query_params
    numeric = query_bool(q, "numericUid")
    hidden, recursive = query_bool(q, "showHidden"), query_bool(q, "recursive")
    follow = query_bool(q, "dereference")
    try:
        node = fac.fs.stat(path)
        if not node.is_dir:  # `ls -l FILE` prints the path as given
            out = [file_wire(node, path, fac.fs, numeric=numeric, uid=fac.settings.uid)]
        else:
            out = _listing(
                fac.fs,
                path,
                hidden=hidden,
                recursive=recursive,
                numeric=numeric,
                uid=fac.settings.uid,
                follow=follow,
            )
    except OSError as exc:
        raise fs_error(exc, "ls: cannot access", path, user) from None
    return respond({"output": out}, user)


@get("/filesystem/{system_name:str}/ops/stat", sync_to_thread=False)
def get_stat(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    fac, user, path = _path(request, system_name)
    follow = query_bool(request.query_params, "dereference")
    try:
        node = fac.fs.stat(path) if follow else fac.fs.lstat(path)
    except OSError as exc:
        raise fs_error(exc, "stat: cannot statx", path, user) from None
    kind = statmod.S_IFLNK if node.is_link else statmod.S_IFDIR if node.is_dir else statmod.S_IFREG
    t = int(node.mtime)
    uid = fac.settings.uid if node.owner != "root" else 0
    out = {
        "mode": kind | node.mode,
        "ino": zlib.crc32(normalize(path).encode()),
        "dev": 2049,
        "nlink": 2 if node.is_dir else 1,
        "uid": uid,
        "gid": uid,
        "size": len(node.link_target or "") if node.is_link else node.size,
        "atime": t,
        "ctime": t,
        "mtime": t,
    }
    return respond({"output": out}, user)


def _read(fac: Any, path: str, user: str, what: str = "dd: failed to open") -> bytes:
    try:
        return fac.fs.read(path)  # type: ignore[no-any-return]
    except OSError as exc:
        raise fs_error(exc, what, path, user) from None


@get("/filesystem/{system_name:str}/ops/view", sync_to_thread=False)
def get_view(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    fac, user, path = _path(request, system_name)
    size = _int(request.query_params, "size", user)
    offset = _int(request.query_params, "offset", user) or 0
    size = OPS_MAX_FILE_SIZE if size is None else size
    if offset < 0:
        raise FirecrestError(
            400, "`offset` value must be an integer value equal or greater than 0", user=user
        )
    if size <= 0:
        raise FirecrestError(400, "`size` value must be an integer value greater than 0", user=user)
    if size > OPS_MAX_FILE_SIZE:
        raise FirecrestError(
            400, f"`size` value must be less than {OPS_MAX_FILE_SIZE} bytes", user=user
        )
    data = _read(fac, path, user)
    return respond({"output": data[offset : offset + size].decode(errors="replace")}, user)


def _head_tail(request: Req, system_name: str, tail: bool) -> Response[bytes]:
    fac, user, path = _path(request, system_name)
    q = request.query_params
    nbytes, lines = _int(q, "bytes", user), _int(q, "lines", user)
    if nbytes is not None and lines is not None:
        raise FirecrestError(400, "Only one of `bytes` or `lines` can be specified.", user=user)
    skip = query_bool(q, "skipHeading" if tail else "skipTrailing")
    data = _read(fac, path, user, "tail: cannot open" if tail else "head: cannot open")
    unit = "bytes" if nbytes is not None else "lines"
    n = nbytes if nbytes is not None else (lines if lines is not None else 10)
    parts: list[bytes] | bytes = data if nbytes is not None else data.splitlines(keepends=True)
    if tail:
        chosen = parts[n:] if skip else parts[-n:] if n else parts[:0]
        start, end = (n if skip else -n), -1
    else:
        chosen = parts[:-n] if skip else parts[:n]
        start, end = 0, (-n if skip else n)
    content = chosen if isinstance(chosen, bytes) else b"".join(chosen)
    out = {
        "content": content.decode(errors="replace"),
        "contentType": unit,
        "startPosition": start,
        "endPosition": end,
    }
    return respond({"output": out}, user)


@get("/filesystem/{system_name:str}/ops/head", sync_to_thread=False)
def get_head(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    return _head_tail(request, system_name, tail=False)


@get("/filesystem/{system_name:str}/ops/tail", sync_to_thread=False)
def get_tail(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    return _head_tail(request, system_name, tail=True)


@get("/filesystem/{system_name:str}/ops/checksum", sync_to_thread=False)
def get_checksum(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    fac, user, path = _path(request, system_name)
    data = _read(fac, path, user, "sha256sum:")
    return respond(
        {"output": {"algorithm": "SHA-256", "checksum": hashlib.sha256(data).hexdigest()}}, user
    )


@get("/filesystem/{system_name:str}/ops/file", sync_to_thread=False)
def get_file(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    fac, user, path = _path(request, system_name)
    try:
        node = fac.fs.stat(path)
    except OSError as exc:
        raise fs_error(exc, "file: cannot open", path, user) from None
    kind = "directory" if node.is_dir else "empty" if not node.data else "ASCII text"
    return respond({"output": kind}, user)


@get("/filesystem/{system_name:str}/ops/download", sync_to_thread=False)
def get_download(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    fac, user, path = _path(request, system_name)
    data = _read(fac, path, user, "cat:")
    if len(data) > OPS_MAX_FILE_SIZE:
        raise FirecrestError(413, "File to download is too large.", user=user)
    return Response(
        data,
        status_code=200,
        media_type="application/octet-stream",
        headers={"F7T-AuthUsername": user, "F7T-AppVersion": "2.5.6"},
    )


@post("/filesystem/{system_name:str}/ops/upload", status_code=200)  # the Response sets 204
async def post_upload(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    fac, user, path = _path(request, system_name)
    try:
        form = await request.form()
    except Exception:  # a body that is not multipart at all
        raise field_error("body", "file", "Field required") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise field_error("body", "file", "Field required")
    data = await upload.read()
    if len(data) > OPS_MAX_FILE_SIZE:
        raise FirecrestError(413, "File to upload is too large.", user=user)
    name = posixpath.basename(upload.filename or "") or "upload"
    target = posixpath.join(path, name)
    try:
        if not fac.fs.stat(path).is_dir:
            raise NotADirectoryError(path)
        fac.fs.write(target, data)
    except OSError as exc:
        raise fs_error(exc, "dd: failed to open", target, user) from None
    return no_content(user)


class _PathBody(msgspec.Struct):
    path: str | None = None
    sourcePath: str | None = None  # the wire names, all three accepted
    source_path: str | None = None
    parent: bool = False
    mode: str | None = None

    @property
    def target(self) -> str | None:
        return self.path or self.sourcePath or self.source_path


def _body(raw: bytes) -> _PathBody:
    try:
        return msgspec.json.decode(raw, type=_PathBody)
    except msgspec.DecodeError:
        raise field_error("body", "", "JSON decode error") from None
    except msgspec.ValidationError as exc:
        raise field_error(
            "body", str(exc).rsplit("$.", 1)[-1].rstrip("`"), str(exc).split(" - ")[0]
        ) from None


@post("/filesystem/{system_name:str}/ops/mkdir", status_code=201)
async def post_mkdir(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    body = _body(await request.body())
    path = body.target
    fac, user, _ = filesystem_context(request, system_name, path)
    assert path is not None
    try:
        node = fac.fs.mkdir(path, parents=body.parent, exist_ok=body.parent)
    except OSError as exc:
        raise fs_error(exc, "mkdir: cannot create directory", path, user) from None
    return respond({"output": file_wire(node, path, fac.fs)}, user, 201)


@put("/filesystem/{system_name:str}/ops/chmod")
async def put_chmod(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    body = _body(await request.body())
    path = body.target
    fac, user, _ = filesystem_context(request, system_name, path)
    assert path is not None
    try:
        mode = int(body.mode or "", 8)
    except ValueError:
        raise FirecrestError(
            400,
            f"Remote process failed with exit status:1 and error message:chmod: invalid mode: "
            f"'{body.mode}'",
            user=user,
        ) from None
    try:
        node = fac.fs.stat(path)
    except OSError as exc:
        raise fs_error(exc, "chmod: cannot access", path, user) from None
    node.mode = mode & 0o7777
    return respond({"output": file_wire(node, path, fac.fs)}, user)


@delete(
    "/filesystem/{system_name:str}/ops/rm", status_code=200, sync_to_thread=False
)  # the Response sets 204
def delete_rm(request: Req, system_name: FromPath[str]) -> Response[bytes]:
    fac, user, path = _path(request, system_name)
    try:
        fac.fs.remove(path, recursive=True)
    except OSError as exc:
        raise fs_error(exc, "rm: cannot remove", path, user) from None
    return no_content(user)


ROUTES = [
    get_ls,
    get_stat,
    get_view,
    get_head,
    get_tail,
    get_checksum,
    get_file,
    get_download,
    post_upload,
    post_mkdir,
    put_chmod,
    delete_rm,
]
