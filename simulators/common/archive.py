"""tar archives of VirtualFS trees, built and read in memory with Python's ``tarfile`` (no
host file is touched).  Bounded: an archive holds at most MAX_MEMBERS entries and
MAX_BYTES of content, both ways, so a crafted archive cannot fill the simulator's memory."""

from __future__ import annotations

import io
import posixpath
import tarfile

from simulators.common.files import Node, VirtualFS, normalize

MAX_MEMBERS = 10_000
MAX_BYTES = 64 << 20


class ArchiveError(Exception):
    """``str(exc)`` reads like tar's own message."""


def _mode(compress: str) -> str:
    return {"gz": "w:gz", "bz2": "w:bz2", "xz": "w:xz", "": "w"}[compress]


def create(fs: VirtualFS, base: str, names: list[str], compress: str = "") -> bytes:
    """A tar of ``names`` (relative to ``base``, as ``tar -C base -c names``)."""
    buf = io.BytesIO()
    count, total = 0, 0
    with tarfile.open(fileobj=buf, mode=_mode(compress)) as tar:  # type: ignore[call-overload]
        stack = [(name.rstrip("/") or name, posixpath.join(base, name)) for name in names]
        stack.reverse()
        while stack:
            arc, path = stack.pop()
            try:
                node = fs.lstat(path)
            except OSError:
                raise ArchiveError(f"tar: {arc}: Cannot stat: No such file or directory") from None
            count += 1
            total += 0 if node.is_dir else len(node.data)
            if count > MAX_MEMBERS or total > MAX_BYTES:
                raise ArchiveError("tar: archive too large for the simulated facility")
            info = tarfile.TarInfo(arc.lstrip("/"))
            info.mode = node.mode & 0o7777
            info.mtime = int(node.mtime)
            info.uname, info.gname = node.owner, node.group
            if node.is_link:
                info.type, info.linkname = tarfile.SYMTYPE, node.link_target or ""
                tar.addfile(info)
            elif node.is_dir:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                for child in sorted(node.children, reverse=True):
                    stack.append((f"{arc}/{child}", posixpath.join(path, child)))
            else:
                info.size = len(node.data)
                tar.addfile(info, io.BytesIO(bytes(node.data)))
    return buf.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            out = []
            for m in tar:
                out.append(m)
                if len(out) > MAX_MEMBERS:
                    raise ArchiveError("tar: archive too large for the simulated facility")
            return out
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError("tar: This does not look like a tar archive") from exc


def extract(fs: VirtualFS, data: bytes, dest: str) -> list[str]:
    """Unpack into ``dest``; returns the names written. Like GNU tar, a leading ``/`` is
    dropped and a member with ``..`` in its path is skipped."""
    written: list[str] = []
    total = 0
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")  # noqa: SIM115 - closed below
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError("tar: This does not look like a tar archive") from exc
    with tar:
        try:
            for count, m in enumerate(tar, 1):
                name = m.name.lstrip("/")
                if count > MAX_MEMBERS or ".." in name.split("/") or not name:
                    if count > MAX_MEMBERS:
                        raise ArchiveError("tar: archive too large for the simulated facility")
                    continue
                path = normalize(posixpath.join(dest, name))
                if m.isdir():
                    fs.mkdir(path, parents=True, exist_ok=True)
                elif m.issym():
                    fs.mkdir(posixpath.dirname(path), parents=True, exist_ok=True)
                    if fs.lexists(path):
                        fs.remove(path)
                    fs.symlink(m.linkname, path)
                elif m.isfile():
                    total += m.size
                    if total > MAX_BYTES:
                        raise ArchiveError("tar: archive too large for the simulated facility")
                    fs.mkdir(posixpath.dirname(path), parents=True, exist_ok=True)
                    f = tar.extractfile(m)
                    node = fs.write(path, f.read() if f else b"")
                    node.mode = m.mode & 0o7777 or 0o644
                else:
                    continue  # devices, fifos, hard links: not simulated
                written.append(name)
        except (tarfile.TarError, EOFError, zlib_error()) as exc:
            raise ArchiveError("tar: Unexpected EOF in archive") from exc
    return written


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def copy_tree(node: Node) -> Node:
    """A deep copy of a node (cp -r); links are copied as links."""
    clone = Node(
        node.name,
        node.is_dir,
        data=bytearray(node.data),
        mode=node.mode,
        owner=node.owner,
        group=node.group,
        link_target=node.link_target,
    )
    clone.children = {k: copy_tree(v) for k, v in node.children.items()}
    return clone
