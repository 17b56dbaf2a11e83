"""A few shell commands run against the VirtualFS, for ``POST /utilities/command``.

Supports ``bash -c``, ``;``/``&&``/``||`` lists, ``>``/``>>`` redirection, ``$VAR``
expansion and: echo, pwd, cd, ls, cat, mkdir, rm, touch, hostname, whoami, id, date, sleep,
true, false, exit, export, srun (runs its command once), module/source/set (no-ops).
Anything else fails the way bash does (``command not found``, 127).  ``job_output`` runs a
batch job's body the same way, for its ``slurm-<id>.out``.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from simulators.common.files import VirtualFS

_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")
_OPERATORS = {";", "&&", "||", "|", "&", ">", ">>", "<"}


MAX_ARG_STRLEN = 131072  # Linux's limit on one argument, e.g. the command line of `bash -c`


class _TooLong(Exception):
    """A command line over MAX_ARG_STRLEN after expansion."""


@dataclass
class Shell:
    fs: VirtualFS
    user: str
    uid: int
    home: str
    host: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    slept: float = 0.0  # seconds of ``sleep`` (the task stays ``new`` that long)
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cwd = self.cwd or self.home
        self.env = {
            "HOME": self.home,
            "USER": self.user,
            "PWD": self.cwd,
            "SHELL": "/bin/bash",
            "SCRATCH": f"/pscratch/sd/{self.user[0]}/{self.user}",
            "NERSC_HOST": "perlmutter",
            **self.env,
        }

    # -- entry ----------------------------------------------------------------------------
    def run_script(self, text: str) -> int:
        """Line by line, like bash reading a batch script (comments and blanks skipped)."""
        code = 0
        for line in text.split("\n"):
            if line.strip() and not line.lstrip().startswith("#"):
                code = self.run(line)
        return code

    def run(self, line: str) -> int:
        try:
            tokens = self._tokens(line)
        except _TooLong:
            self.err.append("bash: Argument list too long\n")
            return 126
        except ValueError as exc:
            self.err.append(f"bash: syntax error: {exc}\n")
            return 2
        return self._list(tokens)

    def _tokens(self, line: str) -> list[str]:
        if len(line) > MAX_ARG_STRLEN:
            raise _TooLong
        expanded = _VAR.sub(lambda m: self.env.get(m.group(1) or m.group(2), ""), line)
        if len(expanded) > MAX_ARG_STRLEN:  # execve's limit; also keeps shlex (quadratic) off huge lines
            raise _TooLong
        lex = shlex.shlex(expanded, posix=True, punctuation_chars=";&|<>")
        lex.whitespace_split = True
        return list(lex)

    def _list(self, tokens: list[str]) -> int:
        code, op, cmd = 0, ";", []
        for tok in [*tokens, ";"]:
            if tok in (";", "&&", "||", "&"):
                if cmd and (
                    op in (";", "&") or (op == "&&" and code == 0) or (op == "||" and code != 0)
                ):
                    code = self._redirected(cmd)
                cmd, op = [], tok
            else:
                cmd.append(tok)
        return code

    def _redirected(self, cmd: list[str]) -> int:
        if "|" in cmd:
            self.err.append("sfapi-sim: pipelines are not simulated\n")
            return 2
        target, append = None, False
        for sym in (">>", ">"):
            if sym in cmd:
                i = cmd.index(sym)
                if i + 1 >= len(cmd):
                    self.err.append("bash: syntax error near unexpected token `newline'\n")
                    return 2
                target, append = cmd[i + 1], sym == ">>"
                cmd = cmd[:i] + cmd[i + 2 :]
                break
        if target is None:
            return self._one(cmd)
        start = len(self.out)
        code = self._one(cmd)
        text = "".join(self.out[start:])
        del self.out[start:]
        try:
            self.fs.write(self._abs(target), text.encode(), append=append)
        except OSError as exc:
            self.err.append(f"bash: {target}: {_why(exc)}\n")
            return 1
        return code

    def _one(self, cmd: list[str]) -> int:
        if not cmd:
            return 0
        name, args = cmd[0], cmd[1:]
        handler = COMMANDS.get(posixpath.basename(name))
        if handler is None:
            self.err.append(f"bash: line 1: {name}: command not found\n")
            return 127
        try:
            return handler(self, args)
        except OSError as exc:
            self.err.append(f"{name}: {_why(exc)}\n")
            return 1

    def _abs(self, path: str) -> str:
        if path.startswith("~"):
            path = self.home + path[1:]
        return posixpath.normpath(posixpath.join(self.cwd, path))


def _why(exc: OSError) -> str:
    return {
        FileNotFoundError: "No such file or directory",
        IsADirectoryError: "Is a directory",
        NotADirectoryError: "Not a directory",
        FileExistsError: "File exists",
        PermissionError: "Permission denied",
    }.get(type(exc), exc.strerror or "Input/output error")


def _echo(sh: Shell, args: list[str]) -> int:
    newline = True
    if args[:1] == ["-n"]:
        newline, args = False, args[1:]
    sh.out.append(" ".join(args) + ("\n" if newline else ""))
    return 0


def _pwd(sh: Shell, args: list[str]) -> int:
    sh.out.append(sh.cwd + "\n")
    return 0


def _cd(sh: Shell, args: list[str]) -> int:
    target = sh._abs(args[0]) if args else sh.home
    node = sh.fs.stat(target)
    if not node.is_dir:
        raise NotADirectoryError(target)
    sh.cwd = sh.env["PWD"] = target
    return 0


def _ls(sh: Shell, args: list[str]) -> int:
    flags = "".join(a[1:] for a in args if a.startswith("-"))
    paths = [a for a in args if not a.startswith("-")] or ["."]
    code = 0
    for p in paths:
        try:
            node = sh.fs.stat(sh._abs(p))
        except OSError:
            sh.err.append(f"ls: cannot access '{p}': No such file or directory\n")
            code = 2
            continue
        listing = [(n.name, n) for n in sh.fs.ls(sh._abs(p))] if node.is_dir else [(p, node)]
        for name, n in listing:
            if name.startswith(".") and "a" not in flags:
                continue
            if "l" in flags:
                when = time.strftime("%b %d %H:%M", time.localtime(n.mtime))
                sh.out.append(f"{n.mode_string} 1 {n.owner} {n.group} {n.size:>8} {when} {name}\n")
            else:
                sh.out.append(name + "\n")
    return code


def _cat(sh: Shell, args: list[str]) -> int:
    code = 0
    for p in args:
        try:
            sh.out.append(sh.fs.read(sh._abs(p)).decode("utf-8", "replace"))
        except OSError as exc:
            sh.err.append(f"cat: {p}: {_why(exc)}\n")
            code = 1
    return code


def _mkdir(sh: Shell, args: list[str]) -> int:
    parents = "-p" in args
    for p in (a for a in args if not a.startswith("-")):
        sh.fs.mkdir(sh._abs(p), parents=parents, exist_ok=parents)
    return 0


def _rm(sh: Shell, args: list[str]) -> int:
    flags = "".join(a[1:] for a in args if a.startswith("-"))
    code = 0
    for p in (a for a in args if not a.startswith("-")):
        try:
            sh.fs.remove(sh._abs(p), recursive="r" in flags.lower())
        except OSError as exc:
            if "f" not in flags:
                sh.err.append(f"rm: cannot remove '{p}': {_why(exc)}\n")
                code = 1
    return code


def _touch(sh: Shell, args: list[str]) -> int:
    for p in args:
        path = sh._abs(p)
        if not sh.fs.exists(path):
            sh.fs.write(path, b"")
    return 0


def _sleep(sh: Shell, args: list[str]) -> int:
    try:
        sh.slept += float(args[0]) if args else 0.0
    except ValueError:
        sh.err.append(f"sleep: invalid time interval '{args[0]}'\n")
        return 1
    return 0


class _Exit(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _exit(sh: Shell, args: list[str]) -> int:
    try:
        raise _Exit(int(args[0]) % 256 if args else 0)
    except ValueError:
        raise _Exit(2) from None


def _bash(sh: Shell, args: list[str]) -> int:
    """``bash -c 'script'``: a sub-shell (its ``exit`` ends only itself)."""
    if len(args) >= 2 and args[0] == "-c":
        try:
            return sh.run_script(args[1])
        except _Exit as exc:
            return exc.code
    return 0


def _export(sh: Shell, args: list[str]) -> int:
    for a in args:
        key, eq, value = a.partition("=")
        if eq:
            sh.env[key] = value
    return 0


def _srun(sh: Shell, args: list[str]) -> int:
    """``srun [options] cmd ...``: run the command once (one simulated task)."""
    while args and args[0].startswith("-"):
        flag, args = args[0], args[1:]
        if len(flag) == 2 and args:  # "-n 2": a short option and its value
            args = args[1:]
    return sh._one(args)


COMMANDS: dict[str, Callable[[Shell, list[str]], int]] = {
    "echo": _echo,
    "pwd": _pwd,
    "cd": _cd,
    "ls": _ls,
    "cat": _cat,
    "mkdir": _mkdir,
    "rm": _rm,
    "touch": _touch,
    "hostname": lambda sh, a: sh.out.append(sh.host + "\n") or 0,
    "whoami": lambda sh, a: sh.out.append(sh.user + "\n") or 0,
    "id": lambda sh, a: (
        sh.out.append(
            f"uid={sh.uid}({sh.user}) gid={sh.uid}({sh.user}) groups={sh.uid}({sh.user})\n"
        )
        or 0
    ),
    "date": lambda sh, a: sh.out.append(time.strftime("%a %b %d %H:%M:%S %Z %Y") + "\n") or 0,
    "sleep": _sleep,
    "true": lambda sh, a: 0,
    "false": lambda sh, a: 1,
    "exit": _exit,
    "bash": _bash,
    "sh": _bash,
    "export": _export,
    "srun": _srun,
    "module": lambda sh, a: 0,
    "source": lambda sh, a: 0,
    "set": lambda sh, a: 0,
}


def run_command(
    fs: VirtualFS, line: str, *, user: str, uid: int, home: str, host: str
) -> tuple[dict[str, object], float]:
    """(task result, seconds it runs) for one ``executable`` line."""
    sh = Shell(fs=fs, user=user, uid=uid, home=home, host=host)
    try:
        code = sh.run(line) if line.strip() else 0
    except _Exit as exc:
        code = exc.code
    result = {
        "status": "ok" if code == 0 else "error",
        "output": "".join(sh.out),
        "error": "".join(sh.err),
        "exit_code": code,
    }
    return result, sh.slept


def job_output(
    fs: VirtualFS,
    body: str,
    *,
    user: str,
    uid: int,
    home: str,
    cwd: str,
    host: str,
    env: dict[str, str],
) -> tuple[str, str]:
    """(stdout, stderr) of a batch job's body, run when the job ends."""
    sh = Shell(fs=fs, user=user, uid=uid, home=home, host=host, env=dict(env), cwd=cwd)
    with contextlib.suppress(_Exit):
        sh.run_script(body)
    return "".join(sh.out), "".join(sh.err)
