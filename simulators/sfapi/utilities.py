"""``/utilities``: ls, download, upload and command over the facility's VirtualFS.

File operations work on every public host (they share NERSC's global file systems).
Paths arrive as ``perlmutter//global/homes/...`` (sfapi_client) or ``%2F``-encoded; a path
not starting with ``/`` is relative to $HOME.  Errors are in-band (``status: ERROR``) with
the text ``ls``/``cat`` would print; sfapi_client looks for "No such file or directory".
"""

from __future__ import annotations

import base64
import posixpath
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from litestar import Request, Response, get, post, put

from simulators.common.files import Node, normalize
from simulators.sfapi.commands import run_command
from simulators.sfapi.rows import PACIFIC
from simulators.sfapi.state import PUBLIC_HOSTS, SfapiFacility
from simulators.sfapi.wire import BASE, ApiError, as_bool, fac, form, missing, ok, require_user

HOSTNAMES = {"perlmutter": "login31", "dtns": "dtn03", "dtn01": "dtn01"}
MAX_UPLOAD = 5 * 1024 * 1024  # "Upload a _small_ file"
_WHY = {
    FileNotFoundError: "No such file or directory",
    IsADirectoryError: "Is a directory",
    NotADirectoryError: "Not a directory",
    PermissionError: "Permission denied",
}


def _host(request: Request[Any, Any, Any], name: str) -> SfapiFacility:
    require_user(request)
    if name not in PUBLIC_HOSTS:
        raise ApiError(404, "Not Found")
    f = fac(request)
    for sysm in f.systems.values():
        sysm.advance()  # lazy time: jobs that ended by now have written their output files
    return f


def _path(request: Request[Any, Any, Any], f: SfapiFacility, op: str, name: str, path: str) -> str:
    """The absolute path asked for; a relative one (no ``/`` first in the raw URL) is in $HOME."""
    raw = unquote(request.scope.get("raw_path", b"").decode("latin-1")).split("?", 1)[0]
    marker = f"/utilities/{op}/{name}/"
    rest = raw.split(marker, 1)[1] if marker in raw else path
    return normalize(rest if rest.startswith("/") else posixpath.join(f.home, rest))


def _unreachable(f: SfapiFacility, name: str) -> str | None:
    if f.is_down("login"):
        return f"ssh: connect to host {name}.nersc.gov port 22: Connection timed out"
    if f.is_down("filesystem"):
        return "Input/output error"
    return None


def _entry(node: Node, name: str, dirs_inside: int = 0) -> dict[str, Any]:
    return {
        "perms": node.mode_string,
        "hardlinks": 2 + dirs_inside if node.is_dir else 1,
        "user": node.owner,
        "group": node.group,
        "size": float(node.size),
        "date": datetime.fromtimestamp(int(node.mtime), PACIFIC).strftime("%Y-%m-%dT%H:%M:%S"),
        "name": name,
    }


def _listing(f: SfapiFacility, path: str) -> list[dict[str, Any]]:
    node = f.fs.stat(path)
    if not node.is_dir:
        return [_entry(node, path)]  # a single file is listed under its full path
    children = f.fs.ls(path)
    parent = f.fs.stat(posixpath.dirname(path)) if path != "/" else node
    subdirs = sum(1 for c in children if c.is_dir)
    return [
        _entry(node, ".", subdirs),
        _entry(parent, ".."),
        *(_entry(c, c.name, len(c.children) if c.is_dir else 0) for c in children),
    ]


@get(f"{BASE}/utilities/ls/{{name:str}}/{{path:path}}")
async def ls(request: Request[Any, Any, Any]) -> Response[bytes]:
    name = request.path_params["name"]
    path = request.path_params["path"]
    f = _host(request, name)
    target = _path(request, f, "ls", name, path)
    down = _unreachable(f, name)
    if down:
        return ok(
            {
                "status": "ERROR",
                "entries": [],
                "error": f"ls: cannot access '{target}': {down}",
                "file": None,
                "is_binary": False,
            }
        )
    try:
        entries = _listing(f, target)
    except OSError as exc:
        why = _WHY.get(type(exc), "No such file or directory")
        return ok(
            {
                "status": "ERROR",
                "entries": [],
                "error": f"ls: cannot access '{target}': {why}",
                "file": None,
                "is_binary": False,
            }
        )
    return ok({"status": "OK", "entries": entries, "error": None, "file": None, "is_binary": False})


@get(f"{BASE}/utilities/download/{{name:str}}/{{path:path}}")
async def download(request: Request[Any, Any, Any]) -> Response[bytes]:
    name = request.path_params["name"]
    path = request.path_params["path"]
    f = _host(request, name)
    target = _path(request, f, "download", name, path)
    binary = as_bool(request.query_params.get("binary"), False, "query", "binary")
    down = _unreachable(f, name)
    if down:
        return ok(
            {"status": "ERROR", "file": None, "is_binary": binary, "error": f"{target}: {down}"}
        )
    try:
        data = f.fs.read(target)
    except OSError as exc:
        why = _WHY.get(type(exc), "No such file or directory")
        return ok(
            {"status": "ERROR", "file": None, "is_binary": binary, "error": f"cat: {target}: {why}"}
        )
    text = base64.b64encode(data).decode() if binary else data.decode("utf-8", "replace")
    return ok({"status": "OK", "file": text, "is_binary": binary, "error": None})


@put(f"{BASE}/utilities/upload/{{name:str}}/{{path:path}}", status_code=200)
async def upload(request: Request[Any, Any, Any]) -> Response[bytes]:
    name = request.path_params["name"]
    path = request.path_params["path"]
    f = _host(request, name)
    target = _path(request, f, "upload", name, path)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise missing(("body", "file"))
    data = await request.form()
    upload_file = data.get("file")
    if upload_file is None or isinstance(upload_file, str):
        raise missing(("body", "file"))
    content = await upload_file.read()
    down = _unreachable(f, name)
    if down:
        return ok({"status": "ERROR", "output": None, "error": f"{target}: {down}"})
    if len(content) > MAX_UPLOAD:
        return ok(
            {
                "status": "ERROR",
                "output": None,
                "error": f"File too large: {len(content)} bytes (limit {MAX_UPLOAD})",
            }
        )
    try:
        f.fs.write(target, content)
    except OSError as exc:
        why = _WHY.get(type(exc), "No such file or directory")
        return ok({"status": "ERROR", "output": None, "error": f"{target}: {why}"})
    return ok({"status": "OK", "output": f"File uploaded to {target}", "error": None})


@post(f"{BASE}/utilities/command/{{name:str}}", status_code=200)
async def command(request: Request[Any, Any, Any]) -> Response[bytes]:
    name = request.path_params["name"]
    f = _host(request, name)
    data = await form(request)
    if "executable" not in data:
        raise missing(("body", "executable"))
    line = data["executable"][0]
    down = _unreachable(f, name)
    if down:
        result: dict[str, object] = {
            "status": "error",
            "output": "",
            "error": down + "\n",
            "exit_code": 255,
        }
        seconds = 0.0
    else:
        result, seconds = run_command(f, line, host=HOSTNAMES.get(name, name))
    task = f.add_task(result, delay=seconds * f.settings.time_scale)
    return ok({"task_id": task.id, "status": "OK", "error": None})


ROUTES = [ls, download, upload, command]
