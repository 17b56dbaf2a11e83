"""The filesystem commands an IRI task runs, over the facility's in-memory tree.

Each returns the task's ``result`` (``{"output": ...}``, the shapes of the reference
implementation's filesystem models) or raises an OSError that becomes a failed task.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import posixpath
import re
import stat as statmod
import tarfile
from typing import Any

from simulators.common.files import Node, VirtualFS, normalize
from simulators.iri.state import iso

OPS_SIZE_LIMIT = 5 * 1024 * 1024
TAR_MODES = {"none": "", "gzip": "gz", "bzip2": "bz2", "xz": "xz"}


def file_entry(node: Node, name: str | None = None) -> dict[str, Any]:
    return {
        "name": name or node.name,
        "type": "directory" if node.is_dir else "file",
        "user": node.owner,
        "group": node.group,
        "permissions": node.permissions,
        "last_modified": iso(node.mtime),
        "size": str(node.size),
    }


def ls(
    fs: VirtualFS, path: str, show_hidden: bool = False, recursive: bool = False
) -> dict[str, Any]:
    node = fs.stat(path)
    if not node.is_dir:
        return {"output": [file_entry(node)]}
    out: list[dict[str, Any]] = []

    def walk(dir_node: Node, prefix: str) -> None:
        for child in sorted(dir_node.children.values(), key=lambda n: n.name):
            if child.name.startswith(".") and not show_hidden:
                continue
            rel = f"{prefix}{child.name}"
            out.append(file_entry(child, rel))
            if recursive and child.is_dir:
                walk(child, rel + "/")

    walk(node, "")
    return {"output": out}


def _content(text: bytes, unit: str, start: int, end: int) -> dict[str, Any]:
    return {
        "output": {
            "content": text.decode(errors="replace"),
            "content_type": unit,
            "start_position": start,
            "end_position": end,
        }
    }


def head(
    fs: VirtualFS, path: str, nbytes: int | None, lines: int | None, skip: bool
) -> dict[str, Any]:
    data = fs.read(path)
    if nbytes is not None:
        part = data[: max(0, len(data) - nbytes)] if skip else data[:nbytes]
        return _content(part, "bytes", 0, len(part))
    rows = data.splitlines(keepends=True)
    kept = rows[: max(0, len(rows) - (lines or 0))] if skip else rows[: lines or 0]
    return _content(b"".join(kept), "lines", 0, len(kept))


def tail(
    fs: VirtualFS, path: str, nbytes: int | None, lines: int | None, skip: bool
) -> dict[str, Any]:
    data = fs.read(path)
    if nbytes is not None:
        part = data[nbytes:] if skip else data[-nbytes:] if nbytes else b""
        return _content(part, "bytes", len(data) - len(part), len(data))
    rows = data.splitlines(keepends=True)
    n = lines or 0
    kept = rows[n:] if skip else rows[-n:] if n else []
    return _content(b"".join(kept), "lines", len(rows) - len(kept), len(rows))


def view(fs: VirtualFS, path: str, size: int, offset: int) -> dict[str, Any]:
    part = fs.read(path)[offset : offset + size]
    return _content(part, "bytes", offset, offset + len(part))


def checksum(fs: VirtualFS, path: str) -> dict[str, Any]:
    return {
        "output": {"algorithm": "SHA-256", "checksum": hashlib.sha256(fs.read(path)).hexdigest()}
    }


def file_type(fs: VirtualFS, path: str) -> dict[str, Any]:
    node = fs.stat(path)
    if node.is_dir:
        return {"output": "directory"}
    if not node.data:
        return {"output": "empty"}
    try:
        bytes(node.data).decode()
    except UnicodeDecodeError:
        return {"output": "data"}
    return {"output": "ASCII text"}


def stat(fs: VirtualFS, path: str, uid: int) -> dict[str, Any]:
    node = fs.stat(path)
    mode = (statmod.S_IFDIR if node.is_dir else statmod.S_IFREG) | node.mode
    t = int(node.mtime)
    return {
        "output": {
            "mode": mode,
            "ino": id(node) & 0xFFFFFFF,
            "dev": 2049,
            "nlink": 1,
            "uid": uid,
            "gid": uid,
            "size": node.size,
            "atime": t,
            "ctime": t,
            "mtime": t,
        }
    }


def rm(fs: VirtualFS, path: str) -> dict[str, Any]:
    fs.remove(path, recursive=True)
    return {"output": f"{path} removed"}


def mkdir(fs: VirtualFS, path: str, parent: bool) -> dict[str, Any]:
    return {"output": file_entry(fs.mkdir(path, parents=parent, exist_ok=parent))}


def chmod(fs: VirtualFS, path: str, mode: str) -> dict[str, Any]:
    if not re.fullmatch(r"[0-7]{3,4}", mode):
        raise ValueError(f"chmod: invalid mode: '{mode}'")
    node = fs.stat(path)
    node.mode = int(mode, 8) & 0o7777
    return {"output": file_entry(node)}


def chown(fs: VirtualFS, path: str, owner: str, group: str) -> dict[str, Any]:
    node = fs.stat(path)
    if (owner and owner != fs.user) or (group and group != fs.group):
        raise PermissionError(1, "Operation not permitted", path)
    return {"output": file_entry(node)}


def _place(fs: VirtualFS, node: Node, target: str) -> Node:
    """Put ``node`` at ``target`` (into it, when ``target`` is a directory)."""
    if fs.exists(target) and fs.stat(target).is_dir:
        target = posixpath.join(target, node.name)
    head_, name = posixpath.split(normalize(target))
    parent = fs.stat(head_)
    if not parent.is_dir:
        raise NotADirectoryError(head_)
    node.name = name
    parent.children[name] = node
    return node


def mv(fs: VirtualFS, path: str, target: str) -> dict[str, Any]:
    node = fs.stat(path)
    fs.remove(path, recursive=True)
    return {"output": file_entry(_place(fs, node, target))}


def cp(fs: VirtualFS, path: str, target: str) -> dict[str, Any]:
    return {"output": file_entry(_place(fs, copy.deepcopy(fs.stat(path)), target))}


def download(fs: VirtualFS, path: str) -> dict[str, Any]:
    data = fs.read(path)
    if len(data) > OPS_SIZE_LIMIT:
        raise ValueError(f"File is too large to download (over {OPS_SIZE_LIMIT} bytes)")
    return {"output": base64.b64encode(data).decode(), "encoding": "base64"}


def upload(fs: VirtualFS, path: str, data: bytes) -> dict[str, Any]:
    node = fs.write(path, data)
    return {"output": f"{path} uploaded ({len(node.data)} bytes)"}


def compress(
    fs: VirtualFS, path: str, target: str, compression: str, pattern: str | None
) -> dict[str, Any]:
    root = fs.stat(path)
    rx = re.compile(pattern) if pattern else None
    buf = io.BytesIO()
    mode = f"w:{TAR_MODES[compression]}" if TAR_MODES[compression] else "w"
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]

        def add(node: Node, arc: str) -> None:
            info = tarfile.TarInfo(arc)
            info.mtime, info.mode = int(node.mtime), node.mode
            if node.is_dir:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                for child in node.children.values():
                    add(child, f"{arc}/{child.name}")
            elif rx is None or rx.search(arc):
                info.size = len(node.data)
                tar.addfile(info, io.BytesIO(bytes(node.data)))

        add(root, root.name)
    return {"output": file_entry(fs.write(target, buf.getvalue()))}


def extract(fs: VirtualFS, path: str, target: str, compression: str) -> dict[str, Any]:
    mode = f"r:{TAR_MODES[compression]}" if TAR_MODES[compression] else "r:*"
    try:
        with tarfile.open(fileobj=io.BytesIO(fs.read(path)), mode=mode) as tar:  # type: ignore[call-overload]
            dest = fs.mkdir(target, parents=True, exist_ok=True)
            for member in tar.getmembers():
                where = normalize(posixpath.join(target, member.name))
                if member.isdir():
                    fs.mkdir(where, parents=True, exist_ok=True)
                elif member.isfile():
                    fs.mkdir(posixpath.dirname(where), parents=True, exist_ok=True)
                    extracted = tar.extractfile(member)
                    fs.write(where, extracted.read() if extracted else b"")
    except tarfile.TarError as exc:
        raise ValueError(f"tar: {path}: {exc}") from None
    return {"output": file_entry(dest)}
