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
        return ("d" if self.is_dir else "-") + self.permissions


def normalize(path: str) -> str:
    """Absolute, normalised, with ``..`` unable to climb above ``/``."""
    if not path:
        raise FileNotFoundError(path)
    path = "/" + path.lstrip("/")
    norm = posixpath.normpath(path)
    return "/" if norm in ("/", "//") else norm


class VirtualFS:
    def __init__(self, user: str = "superfed", group: str = "superfed"):
        self.user = user
        self.group = group
        self.root = Node("/", True, owner="root")

    # -- lookup ---------------------------------------------------------------------------
    def _walk(self, path: str) -> Node:
        node = self.root
        for part in normalize(path).strip("/").split("/"):
            if not part:
                continue
            if not node.is_dir:
                raise NotADirectoryError(path)
            try:
                node = node.children[part]
            except KeyError:
                raise FileNotFoundError(path) from None
        return node

    def _parent(self, path: str) -> tuple[Node, str]:
        norm = normalize(path)
        if norm == "/":
            raise PermissionError(path)
        head, name = posixpath.split(norm)
        parent = self._walk(head)
        if not parent.is_dir:
            raise NotADirectoryError(head)
        return parent, name

    def exists(self, path: str) -> bool:
        try:
            self._walk(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def stat(self, path: str) -> Node:
        return self._walk(path)

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
        if node is not None and node.is_dir:
            raise IsADirectoryError(path)
        if node is None:
            node = Node(name, False, mode=0o644, owner=self.user, group=self.group)
            parent.children[name] = node
        if not append:
            node.data = bytearray()
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
