"""The simulators' shell: runs a job's script (or an SF API command) against the facility's
VirtualFS, with the scheduler's environment.

It never touches the host: files are VirtualFS nodes, commands are the Python functions in
``shell_commands``, and anything else fails the way bash does (``bash: line N: X: command
not found``, 127).  Work is bounded: output per stream, commands run (loops included), tasks
per launcher, and script time (``sleep`` adds to ``slept``; past ``budget`` the script is
killed, which is how a job overrunning its walltime ends).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from simulators.common.files import VirtualFS
from simulators.common.shell_parse import (
    AndOr,
    Block,
    Command,
    For,
    Group,
    If,
    Pipeline,
    Redirect,
    ShellSyntaxError,
    Simple,
    While,
    parse,
)

MAX_OUTPUT = 4 << 20  # bytes one run may write to its streams and redirections
MAX_STEPS = 20_000  # commands one run may execute (loops included)
MAX_DEPTH = 32  # nested bash -c, $( ), scripts and functions
MAX_ARG_STRLEN = 131072  # Linux's limit on one argument


class Exit(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class Killed(Exception):
    """The script ran out of time (``budget``) or work (``MAX_STEPS``)."""


class Sink:
    """Where a stream goes: a buffer (captured) or a VirtualFS file (redirected)."""

    def __init__(self, sh: Shell, path: str | None = None, *, discard: bool = False):
        self.sh = sh
        self.path = path
        self.discard = discard  # /dev/null
        self.chunks: list[bytes] = []

    def write(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if not raw or self.discard:
            return
        room = MAX_OUTPUT - self.sh.written
        if room <= 0:
            return
        raw = raw[:room]
        self.sh.written += len(raw)
        if self.path is None:
            self.chunks.append(raw)
        else:
            self.sh.fs.write(self.path, raw, append=True)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")

    def data(self) -> bytes:
        return b"".join(self.chunks)


@dataclass
class IO:
    out: Sink
    err: Sink
    stdin: bytes = b""


Handler = Callable[["Shell", list[str], IO], int]


@dataclass
class Launch:
    """What ``srun``/``mpiexec`` needs from the job: its size and the per-task variables."""

    nodes: int = 1
    ntasks: int = 1
    node_names: list[str] = field(default_factory=lambda: ["nid001000"])
    max_tasks_per_node: int = 256
    rank_vars: tuple[str, ...] = ("SLURM_PROCID",)  # set to the task's rank
    scheduler: str = "slurm"  # slurm | pbs | none (a login node)


@dataclass
class Shell:
    fs: VirtualFS
    user: str
    uid: int
    home: str
    host: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    args: list[str] = field(default_factory=list)  # $1, $2, ...
    name: str = "bash"  # $0, and the prefix of its error messages
    launch: Launch = field(default_factory=lambda: Launch(scheduler="none"))
    budget: float | None = None  # seconds of sleep allowed before the script is killed
    extra: dict[str, Handler] = field(default_factory=dict)  # facility commands (squeue, ...)
    slept: float = 0.0
    status: int = 0  # $?
    written: int = 0
    steps: int = 0
    depth: int = 0
    errexit: bool = False  # set -e
    testing: int = 0  # inside an if/while condition or before && ||: set -e does not apply

    def __post_init__(self) -> None:
        self.cwd = self.cwd or self.home
        self.env = {
            "HOME": self.home,
            "USER": self.user,
            "LOGNAME": self.user,
            "PWD": self.cwd,
            "SHELL": "/bin/bash",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOSTNAME": self.host,
            **self.env,
        }

    # -- entry points ---------------------------------------------------------------------
    def run_script(self, text: str, io: IO) -> int:
        """Run ``text`` as bash would run a script; ``exit`` ends it with its code."""
        try:
            block = parse(text)
        except RecursionError:  # thousands of nested groups: refused, as a syntax error
            io.err.write(f"{self.name}: syntax error: nesting too deep\n")
            return 2
        except ShellSyntaxError as exc:
            io.err.write(f"{self.name}: line {exc.line}: {exc}\n")
            if str(exc).startswith("unexpected EOF"):
                last = text.count("\n") + 1
                io.err.write(f"{self.name}: line {last}: syntax error: unexpected end of file\n")
            return 2
        try:
            return self.block(block, io)
        except Exit as exc:
            self.status = exc.code
            return exc.code

    # -- execution ------------------------------------------------------------------------
    def block(self, block: Block, io: IO) -> int:
        for item in block.items:
            self.status = self.and_or(item, io)
            if self.status and self.errexit and not self.testing and not item.rest:
                raise Exit(self.status)
        return self.status

    def condition(self, block: Block, io: IO) -> int:
        self.testing += 1
        try:
            return self.block(block, io)
        finally:
            self.testing -= 1

    def and_or(self, node: AndOr, io: IO) -> int:
        if node.rest:
            self.testing += 1
        try:
            code = self.pipeline(node.first, io)
        finally:
            if node.rest:
                self.testing -= 1
        for k, (op, pipe) in enumerate(node.rest):
            self.status = code
            if (op == "&&") == (code == 0):
                last = k == len(node.rest) - 1
                if not last:
                    self.testing += 1
                try:
                    code = self.pipeline(pipe, io)
                finally:
                    if not last:
                        self.testing -= 1
                if last and code and self.errexit and not self.testing:
                    raise Exit(code)
        return code

    def pipeline(self, pipe: Pipeline, io: IO) -> int:
        stdin = io.stdin
        code = 0
        for i, cmd in enumerate(pipe.commands):
            last = i == len(pipe.commands) - 1
            out = io.out if last else Sink(self)
            code = self.command(cmd, IO(out, io.err, stdin))
            if not last:
                stdin = out.data()
                self.written -= len(stdin)  # piped bytes are not output
        if pipe.negate:
            code = int(code == 0)
        return code

    def command(self, cmd: Command, io: IO) -> int:
        self._step()
        if isinstance(cmd, Simple):
            return self.simple(cmd, io)
        if isinstance(cmd, For):
            words = self.expand_words(cmd.words, io) if cmd.words is not None else list(self.args)
            code = 0
            for w in words:
                self._step()
                self.env[cmd.name] = w
                code = self.block(cmd.body, io)
            return code
        if isinstance(cmd, While):
            code = 0
            while True:
                self._step()
                cond = self.condition(cmd.cond, io)
                if (cond == 0) == cmd.until:
                    return code
                code = self.block(cmd.body, io)
        if isinstance(cmd, If):
            for test, body in cmd.branches:
                if self.condition(test, io) == 0:
                    return self.block(body, io)
            return self.block(cmd.otherwise, io) if cmd.otherwise else 0
        assert isinstance(cmd, Group)
        gio = self._redirected(cmd.redirects, io, cmd.line)
        if gio is None:
            return 1
        if not cmd.subshell:
            return self.block(cmd.body, gio)
        sub = self.subshell()
        try:
            code = sub.block(cmd.body, gio)
        except Exit as exc:
            code = exc.code
        self._absorb(sub)
        return code

    def simple(self, cmd: Simple, io: IO) -> int:
        try:
            words = self.expand_words(cmd.words, io)
            assigns = [(k, self.expand_one(v, io)) for k, v in cmd.assigns]
        except _BadSubstitution as exc:
            io.err.write(f"{self.name}: line {cmd.line}: {exc}: bad substitution\n")
            return 1
        if any(len(w) > MAX_ARG_STRLEN for w in words):
            io.err.write(f"{self.name}: line {cmd.line}: Argument list too long\n")
            return 126
        cio = self._redirected(cmd.redirects, io, cmd.line)
        if cio is None:
            return 1
        if not words:
            self.env.update(assigns)
            return 0
        saved = {k: self.env.get(k) for k, _ in assigns}
        self.env.update(assigns)
        try:
            return self.run_words(words, cio, cmd.line)
        finally:
            for k, v in saved.items():
                if v is None:
                    self.env.pop(k, None)
                else:
                    self.env[k] = v

    def run_words(self, words: list[str], io: IO, line: int = 1) -> int:
        """Run one command (already expanded): a builtin, a facility command, or a script."""
        from simulators.common.shell_commands import COMMANDS

        self._step()
        name = words[0]
        handler = self.extra.get(name) or COMMANDS.get(name)
        if handler is None and "/" in name:
            base = posixpath.basename(name)
            path = self.abs(name)
            if self.fs.exists(path) and not self.fs.stat(path).is_dir:
                return self.run_file(path, words[1:], io, name)
            if path.startswith(("/bin/", "/usr/bin/", "/usr/local/bin/")):
                handler = self.extra.get(base) or COMMANDS.get(base)
            elif not self.fs.exists(path):
                io.err.write(f"{self.name}: line {line}: {name}: No such file or directory\n")
                return 127
        if handler is None:
            io.err.write(f"{self.name}: line {line}: {name}: command not found\n")
            return 127
        try:
            return handler(self, words[1:], io)
        except OSError as exc:
            io.err.write(f"{posixpath.basename(name)}: {why(exc)}\n")
            return 1

    def run_file(self, path: str, args: list[str], io: IO, shown: str) -> int:
        node = self.fs.stat(path)
        if not node.mode & 0o111:
            io.err.write(f"{self.name}: {shown}: Permission denied\n")
            return 126
        text = self.fs.read(path).decode("utf-8", "replace")
        return self.run_child(text, args, io, name=shown)

    def run_child(
        self, text: str, args: list[str], io: IO, *, name: str | None = None, errexit: bool = False
    ) -> int:
        """A child bash (``bash -c``, a script file): its own variables and ``exit``."""
        sub = self.subshell()
        sub.args = list(args)
        sub.errexit = errexit
        if name is not None:
            sub.name = name
        code = sub.run_script(text, io)
        self._absorb(sub)
        return code

    def subshell(self) -> Shell:
        if self.depth >= MAX_DEPTH:
            raise Killed("maximum nesting depth exceeded")
        sub = Shell(
            fs=self.fs,
            user=self.user,
            uid=self.uid,
            home=self.home,
            host=self.host,
            env=dict(self.env),
            cwd=self.cwd,
            args=list(self.args),
            name=self.name,
            launch=self.launch,
            budget=self.budget,
            extra=self.extra,
        )
        sub.slept, sub.written, sub.steps, sub.depth = self.slept, self.written, self.steps, self.depth + 1
        sub.status, sub.errexit = self.status, self.errexit
        return sub

    def _absorb(self, sub: Shell) -> None:
        """What a child used counts against the parent's bounds."""
        self.slept, self.written, self.steps = sub.slept, sub.written, sub.steps

    def _step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise Killed("too many commands")

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        if self.budget is not None and self.slept > self.budget:
            raise Killed("time limit")

    # -- redirections ---------------------------------------------------------------------
    def _redirected(self, redirects: list[Redirect], io: IO, line: int) -> IO | None:
        if not redirects:
            return io
        fds: dict[int, Sink] = {1: io.out, 2: io.err}
        stdin = io.stdin
        for r in redirects:
            if r.op == "<<":
                stdin = (self.expand_heredoc(r.target, io) if r.expand else r.target).encode()
                continue
            target = self.expand_one(r.target, io)
            if r.op in (">&", "<&") and target.isdigit():
                if int(target) in fds and r.fd in (1, 2):
                    fds[r.fd] = fds[int(target)]
                continue
            path = self.abs(target)
            device = _DEVICES.get(path)
            if device is not None:
                if r.op == "<":
                    stdin = b""
                    continue
                sink = Sink(self, discard=True) if device == 0 else fds[device]
                if r.op in ("&>", "&>>", ">&"):
                    fds[1] = fds[2] = sink
                else:
                    fds[r.fd] = sink
                continue
            try:
                if r.op == "<":
                    stdin = self.fs.read(path)
                    continue
                if r.op in (">", ">&", "&>") or not self.fs.exists(path):
                    self.fs.write(path, b"")
                elif self.fs.stat(path).is_dir:
                    raise IsADirectoryError(path)
            except OSError as exc:
                io.err.write(f"{self.name}: line {line}: {target}: {why(exc)}\n")
                return None
            sink = Sink(self, path)
            if r.op in ("&>", "&>>", ">&"):
                fds[1] = fds[2] = sink
            else:
                fds[r.fd] = sink
        return IO(fds[1], fds[2], stdin)

    # -- expansion ------------------------------------------------------------------------
    def abs(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd, path)) if path else self.cwd

    def var(self, name: str) -> str | None:
        if name == "?":
            return str(self.status)
        if name == "$":
            return "4242"
        if name == "#":
            return str(len(self.args))
        if name in ("@", "*"):
            return " ".join(self.args)
        if name.isdigit():
            i = int(name)
            if i == 0:
                return self.name
            return self.args[i - 1] if i <= len(self.args) else None
        return self.env.get(name)

    def expand_words(self, words: list[str], io: IO) -> list[str]:
        out: list[str] = []
        for w in words:
            out.extend(self._expand(w, io, split=True))
        return out

    def expand_one(self, word: str, io: IO) -> str:
        return " ".join(self._expand(word, io, split=False))

    def expand_heredoc(self, body: str, io: IO) -> str:
        return "".join(text for text, _ in self._pieces(body, io, heredoc=True)[0])

    def _expand(self, word: str, io: IO, *, split: bool) -> list[str]:
        pieces, globbable = self._pieces(word, io)
        # pieces alternate: (text, quoted) ... joined into fields; unquoted expansions split
        fields: list[str] = []
        current: list[str] = []
        has_field = False
        for text, kind in pieces:
            if kind == "split" and split:
                parts = text.split()
                if not parts:
                    continue
                if text[0].isspace() and current:
                    fields.append("".join(current))
                    current = []
                for k, part in enumerate(parts):
                    if k:
                        fields.append("".join(current))
                        current = []
                    current.append(part)
                has_field = True
                if text[-1].isspace():
                    fields.append("".join(current))
                    current, has_field = [], False
            else:
                current.append(text)
                has_field = has_field or kind == "quoted" or bool(text)
        if has_field or current:
            fields.append("".join(current))
        if split and globbable:
            return [g for f in fields for g in self._glob(f)]
        return fields if split else [" ".join(fields)]

    def _pieces(self, word: str, io: IO, heredoc: bool = False) -> tuple[list[tuple[str, str]], bool]:
        """(text, kind) pieces: kind is ``lit`` (unquoted literal), ``quoted``, or ``split``
        (an unquoted expansion, subject to word splitting); and whether to glob."""
        out: list[tuple[str, str]] = []
        globbable = False
        i, n = 0, len(word)
        in_dq = False
        if not heredoc and word.startswith("~") and (n == 1 or word[1] == "/"):
            out.append((self.home, "lit"))
            i = 1
        while i < n:
            c = word[i]
            if c == "\\":
                if i + 1 < n:
                    nxt = word[i + 1]
                    if (in_dq or heredoc) and nxt not in '$`"\\\n':
                        out.append(("\\" + nxt, "quoted"))
                    elif nxt != "\n":
                        out.append((nxt, "quoted"))
                i += 2
                continue
            if c == "'" and not in_dq and not heredoc:
                j = word.index("'", i + 1)
                out.append((word[i + 1 : j], "quoted"))
                i = j + 1
                continue
            if c == '"' and not heredoc:
                in_dq = not in_dq
                out.append(("", "quoted"))
                i += 1
                continue
            if c == "$" and i + 1 < n:
                text, i = self._dollar(word, i, io)
                if text is not None:
                    out.append((text, "quoted" if (in_dq or heredoc) else "split"))
                    continue
                out.append(("$", "quoted" if in_dq else "lit"))
                i += 1
                continue
            if c == "`":
                j = word.index("`", i + 1)
                text = self._substitute(word[i + 1 : j], io)
                out.append((text, "quoted" if (in_dq or heredoc) else "split"))
                i = j + 1
                continue
            if not in_dq and not heredoc and c in "*?[":
                globbable = True
            out.append((c, "quoted" if (in_dq or heredoc) else "lit"))
            i += 1
        return out, globbable

    _NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]|[?$#@*]")

    def _dollar(self, word: str, i: int, io: IO) -> tuple[str | None, int]:
        nxt = word[i + 1]
        if word.startswith("$((", i):
            j = word.find("))", i)
            if j < 0:
                raise _BadSubstitution(word[i:])
            return str(self._arith(word[i + 3 : j])), j + 2
        if nxt == "(":
            depth, j = 0, i + 1
            while j < len(word):
                if word[j] == "(":
                    depth += 1
                elif word[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                elif word[j] in "'\"":
                    j = word.find(word[j], j + 1)
                j += 1
            return self._substitute(word[i + 2 : j], io), j + 1
        if nxt == "{":
            j = word.find("}", i)
            inner = word[i + 2 : j]
            m = re.fullmatch(r"(#?)([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[?$#@*])(?:(:?[-=+])(.*))?", inner)
            if not m or j < 0:
                raise _BadSubstitution("${" + inner + "}")
            length, name, op, arg = m.groups()
            value = self.var(name)
            if length:
                return str(len(value or "")), j + 1
            if op:
                empty = value is None or (op.startswith(":") and value == "")
                alt = self.expand_one(arg, io) if arg else ""
                if op.endswith("-") and empty:
                    value = alt
                elif op.endswith("=") and empty:
                    value = self.env[name] = alt
                elif op.endswith("+"):
                    value = "" if empty else alt
            return value or "", j + 1
        m = self._NAME.match(word, i + 1)
        if not m:
            return None, i
        return self.var(m.group()) or "", m.end()

    def _arith(self, expr: str) -> int:
        expanded = re.sub(r"\$?([A-Za-z_][A-Za-z0-9_]*)", lambda m: self.env.get(m.group(1), "0") or "0", expr)
        unsafe = "**" in expanded or "<<" in expanded or ">>" in expanded  # no huge powers or shifts
        if unsafe or not re.fullmatch(r"[\d\s+\-*/%()<>=!]*", expanded) or len(expanded) > 200:
            raise _BadSubstitution(expr)
        try:
            value = eval(expanded.replace("/", "//"), {"__builtins__": {}}, {})
        except Exception:
            raise _BadSubstitution(expr) from None
        return int(value)

    def _substitute(self, text: str, io: IO) -> str:
        out = Sink(self)
        self.run_child(text, list(self.args), IO(out, io.err))
        data = out.text()
        self.written -= len(out.data())
        return data.rstrip("\n")

    def _glob(self, pattern: str) -> list[str]:
        head, tail = posixpath.split(pattern)
        if any(ch in head for ch in "*?["):
            return [pattern]  # only the last component globs
        base = self.abs(head or ".")
        try:
            names = [n.name for n in self.fs.ls(base)] if self.fs.stat(base).is_dir else []
        except OSError:
            return [pattern]
        hits = sorted(
            posixpath.join(head, n) if head else n
            for n in names
            if fnmatch.fnmatchcase(n, tail) and (tail.startswith(".") or not n.startswith("."))
        )
        return hits or [pattern]


_DEVICES = {"/dev/null": 0, "/dev/stdout": 1, "/dev/stderr": 2}


class _BadSubstitution(Exception):
    pass


def why(exc: OSError) -> str:
    return {
        FileNotFoundError: "No such file or directory",
        IsADirectoryError: "Is a directory",
        NotADirectoryError: "Not a directory",
        FileExistsError: "File exists",
        PermissionError: "Permission denied",
    }.get(type(exc), exc.strerror or "Input/output error")
