"""An in-memory file tree per facility, for the file operations of each protocol.

Errors are Python's own (FileNotFoundError, NotADirectoryError, IsADirectoryError,
FileExistsError, PermissionError); each simulator turns them into its facility's shape.
"""

from __future__ import annotations

import hashlib
import posixpath
import stat as statmod
import time
from dataclasses import dataclass, field


@dataclass
class Node:
    name: str
    is_dir: bool
    data: bytearray = field(default_factory=bytearray)
    children: dict[str, Node] = field(default_factory=dict)
    mode: int = 0o755
    mtime: float = field(default_factory=time.time)
    owner: str = "root"
    group: str = "root"
    link_target: str | None = None  # a symbolic link: the path it points to, as given

    @property
    def is_link(self) -> bool:
        return self.link_target is not None

    @property
    def size(self) -> int:
        return 4096 if self.is_dir else len(self.data)

    @property
    def permissions(self) -> str:
        """``rwxr-xr-x`` style, without the type letter."""
        return statmod.filemode(self.mode)[1:]

    @property
    def mode_string(self) -> str:
        """``drwxr-xr-x`` style, with the type letter, as ``ls -l`` prints."""
        kind = "l" if self.is_link else "d" if self.is_dir else "-"
        return kind + ("rwxrwxrwx" if self.is_link else self.permissions)


def normalize(path: str) -> str:
    """Absolute, normalised, with ``..`` unable to climb above ``/``."""
    if not path:
        raise FileNotFoundError(path)
    path = "/" + path.lstrip("/")
    norm = posixpath.normpath(path)
    return "/" if norm in ("/", "//") else norm


MAX_LINK_HOPS = 40  # Linux's MAXSYMLINKS


class VirtualFS:
    def __init__(self, user: str = "superfed", group: str = "superfed"):
        self.user = user
        self.group = group
        self.root = Node("/", True, owner="root")

    # -- lookup ---------------------------------------------------------------------------
    def _walk(self, path: str, *, follow: bool = True, hops: int = 0) -> Node:
        """The node at ``path``; symbolic links on the way are followed (the last one only
        with ``follow``), at most MAX_LINK_HOPS of them, as the kernel's ELOOP."""
        node = self.root
        parts = [p for p in normalize(path).strip("/").split("/") if p]
        for i, part in enumerate(parts):
            if node.is_link:
                node, hops = self._resolve(node, "/" + "/".join(parts[: i - 1]), hops)
            if not node.is_dir:
                raise NotADirectoryError(path)
            try:
                node = node.children[part]
            except KeyError:
                raise FileNotFoundError(path) from None
        if node.is_link and follow:
            node, hops = self._resolve(node, "/" + "/".join(parts[:-1]), hops)
        return node

    def _resolve(self, link: Node, where: str, hops: int) -> tuple[Node, int]:
        if hops >= MAX_LINK_HOPS:
            raise OSError(40, "Too many levels of symbolic links")
        target = link.link_target or ""
        full = target if target.startswith("/") else posixpath.join(where, target)
        return self._walk(full, follow=True, hops=hops + 1), hops + 1

    def _parent(self, path: str) -> tuple[Node, str]:
        norm = normalize(path)
        if norm == "/":
            raise PermissionError(path)
        head, name = posixpath.split(norm)
        parent = self._walk(head)  # links in the directory part are followed
        if not parent.is_dir:
            raise NotADirectoryError(head)
        return parent, name

    def exists(self, path: str) -> bool:
        try:
            self._walk(path)
        except OSError:  # missing, not a directory on the way, a link loop
            return False
        return True

    def stat(self, path: str) -> Node:
        return self._walk(path)

    def lstat(self, path: str) -> Node:
        """The node itself, a symbolic link not followed."""
        return self._walk(path, follow=False)

    def lexists(self, path: str) -> bool:
        try:
            self._walk(path, follow=False)
        except OSError:
            return False
        return True

    def symlink(self, target: str, path: str) -> Node:
        """``ln -s target path``: the target is kept as given (it may dangle)."""
        parent, name = self._parent(path)
        if name in parent.children:
            raise FileExistsError(path)
        node = Node(name, False, mode=0o777, owner=self.user, group=self.group, link_target=target)
        parent.children[name] = node
        return node

    def link(self, existing: str, path: str) -> Node:
        """A hard link: a second name whose content is the same buffer."""
        node = self._walk(existing)
        if node.is_dir:
            raise PermissionError(existing)  # hard links to directories are not allowed
        parent, name = self._parent(path)
        if name in parent.children:
            raise FileExistsError(path)
        twin = Node(name, False, data=node.data, mode=node.mode, owner=node.owner, group=node.group)
        parent.children[name] = twin
        return twin

    def attach(self, path: str, node: Node) -> None:
        """Put ``node`` (a copied or moved tree) at ``path``, replacing a file there."""
        parent, name = self._parent(path)
        old = parent.children.get(name)
        if old is not None and old.is_dir and not old.is_link:
            raise IsADirectoryError(path)
        node.name = name
        parent.children[name] = node

    def detach(self, path: str) -> Node:
        parent, name = self._parent(path)
        node = parent.children.get(name)
        if node is None:
            raise FileNotFoundError(path)
        del parent.children[name]
        return node

    def ls(self, path: str, *, hidden: bool = True) -> list[Node]:
        node = self._walk(path)
        if not node.is_dir:
            return [node]
        entries = sorted(node.children.values(), key=lambda n: n.name)
        return entries if hidden else [n for n in entries if not n.name.startswith(".")]

    # -- changes --------------------------------------------------------------------------
    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> Node:
        norm = normalize(path)
        if parents:
            node = self.root
            for part in norm.strip("/").split("/"):
                if not part:
                    continue
                child = node.children.get(part)
                if child is None:
                    child = Node(part, True, owner=self.user, group=self.group)
                    node.children[part] = child
                elif not child.is_dir:
                    raise NotADirectoryError(path)
                node = child
            return node
        parent, name = self._parent(norm)
        if name in parent.children:
            if exist_ok and parent.children[name].is_dir:
                return parent.children[name]
            raise FileExistsError(path)
        node = Node(name, True, owner=self.user, group=self.group)
        parent.children[name] = node
        return node

    def write(self, path: str, data: bytes, *, append: bool = False) -> Node:
        parent, name = self._parent(path)
        node = parent.children.get(name)
        if node is not None and node.is_link:  # writing through a link writes its target
            target = node.link_target or ""
            where = posixpath.dirname(normalize(path))
            hops = getattr(self, "_write_hops", 0)
            if hops >= MAX_LINK_HOPS:
                raise OSError(40, "Too many levels of symbolic links")
            self._write_hops = hops + 1
            try:
                return self.write(posixpath.join(where, target), data, append=append)
            finally:
                self._write_hops = hops
        if node is not None and node.is_dir:
            raise IsADirectoryError(path)
        if node is None:
            node = Node(name, False, mode=0o644, owner=self.user, group=self.group)
            parent.children[name] = node
        if not append:
            del node.data[:]  # in place: a hard link shares this buffer
        node.data.extend(data)
        node.mtime = time.time()
        return node

    def read(self, path: str) -> bytes:
        node = self._walk(path)
        if node.is_dir:
            raise IsADirectoryError(path)
        return bytes(node.data)

    def remove(self, path: str, *, recursive: bool = False) -> None:
        parent, name = self._parent(path)
        node = parent.children.get(name)
        if node is None:
            raise FileNotFoundError(path)
        if node.is_dir and node.children and not recursive:
            raise OSError(39, "Directory not empty", path)
        del parent.children[name]

    def checksum(self, path: str, algorithm: str = "sha256") -> str:
        return hashlib.new(algorithm, self.read(path)).hexdigest()
