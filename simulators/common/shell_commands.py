"""The commands the simulated shell knows, each a Python function over the VirtualFS.

Messages are GNU coreutils' and bash's own words, so what a job writes to its error file
reads like the real thing.  ``srun``/``mpiexec`` run their command once per task."""

from __future__ import annotations

import fnmatch
import posixpath
import re
import time
from collections.abc import Callable

from simulators.common import archive
from simulators.common.shell import IO, MAX_DEPTH, Exit, Killed, Shell, why

Handler = Callable[[Shell, list[str], IO], int]
MAX_TASKS = 1024  # tasks one launcher call may start (each runs the command once)
MAX_SEQ = 10_000


def _split_flags(args: list[str]) -> tuple[str, list[str]]:
    """Short flags (``-rf``) and the rest; ``--`` ends the flags."""
    flags, rest = "", list[str]()
    it = iter(args)
    for a in it:
        if a == "--":
            rest.extend(it)
            break
        if a.startswith("-") and len(a) > 1 and not a.startswith("--"):
            flags += a[1:]
        elif a.startswith("--"):
            flags += {"--recursive": "r", "--force": "f", "--parents": "p", "--all": "a"}.get(a, "")
        else:
            rest.append(a)
    return flags, rest


# -- output ---------------------------------------------------------------------------------
def echo(sh: Shell, args: list[str], io: IO) -> int:
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        newline = newline and "n" not in args[0]
        escapes = "e" in args[0]
        args = args[1:]
    text = " ".join(args)
    if escapes:
        text = text.encode().decode("unicode_escape", "replace")
    io.out.write(text + ("\n" if newline else ""))
    return 0


def printf(sh: Shell, args: list[str], io: IO) -> int:
    if not args:
        io.err.write("printf: usage: printf format [arguments]\n")
        return 2
    fmt, values = args[0].replace("\\n", "\n").replace("\\t", "\t"), args[1:]
    conv = re.compile(r"%[-+ 0#]*\d*(?:\.\d+)?[sdifxXo%]")
    out: list[str] = []
    first = True
    while first or values:
        first = False
        pos = 0
        used = 0
        for m in conv.finditer(fmt):
            out.append(fmt[pos : m.start()])
            pos = m.end()
            spec = m.group()
            if spec == "%%":
                out.append("%")
                continue
            raw = values[used] if used < len(values) else ""
            used += 1
            try:
                value: object = raw if spec[-1] == "s" else (float(raw or 0) if spec[-1] == "f" else int(raw or 0))
                out.append(spec.replace("i", "d") % value)
            except ValueError:
                io.err.write(f"printf: {raw}: invalid number\n")
                out.append(spec.replace(spec[-1], "s") % "0")
        out.append(fmt[pos:])
        values = values[used:] if used else []
    io.out.write("".join(out))
    return 0


def cat(sh: Shell, args: list[str], io: IO) -> int:
    _, paths = _split_flags(args)
    if not paths:
        io.out.write(io.stdin)
        return 0
    code = 0
    for p in paths:
        if p == "-":
            io.out.write(io.stdin)
            continue
        try:
            io.out.write(sh.fs.read(sh.abs(p)))
        except OSError as exc:
            io.err.write(f"cat: {p}: {why(exc)}\n")
            code = 1
    return code


def _inputs(sh: Shell, paths: list[str], io: IO, cmd: str) -> tuple[list[tuple[str, bytes]], int]:
    if not paths:
        return [("", io.stdin)], 0
    out, code = [], 0
    for p in paths:
        try:
            out.append((p, sh.fs.read(sh.abs(p))))
        except OSError as exc:
            io.err.write(f"{cmd}: {p}: {why(exc)}\n")
            code = 1
    return out, code


def _count_opt(args: list[str], default: int) -> tuple[int, list[str]]:
    n, rest = default, []
    it = iter(args)
    for a in it:
        if a == "-n":
            n = int(next(it, str(default)))
        elif re.fullmatch(r"-n?\d+", a):
            n = int(a.lstrip("-n"))
        else:
            rest.append(a)
    return n, rest


def head(sh: Shell, args: list[str], io: IO) -> int:
    n, paths = _count_opt(args, 10)
    inputs, code = _inputs(sh, paths, io, "head")
    for _, data in inputs:
        io.out.write(b"".join(data.splitlines(keepends=True)[:n]))
    return code


def tail(sh: Shell, args: list[str], io: IO) -> int:
    n, paths = _count_opt(args, 10)
    inputs, code = _inputs(sh, paths, io, "tail")
    for _, data in inputs:
        lines = data.splitlines(keepends=True)
        io.out.write(b"".join(lines[-n:] if n else []))
    return code


def wc(sh: Shell, args: list[str], io: IO) -> int:
    flags, paths = _split_flags(args)
    inputs, code = _inputs(sh, paths, io, "wc")
    for name, data in inputs:
        counts = {"l": data.count(b"\n"), "w": len(data.split()), "c": len(data)}
        shown = [str(counts[k]) for k in "lwc" if k in flags] or [str(counts[k]) for k in "lwc"]
        io.out.write(" ".join(shown) + (f" {name}" if name else "") + "\n")
    return code


def grep(sh: Shell, args: list[str], io: IO) -> int:
    flags, rest = _split_flags(args)
    if not rest:
        io.err.write("Usage: grep [OPTION]... PATTERNS [FILE]...\n")
        return 2
    pattern, paths = rest[0], rest[1:]
    try:
        rx = re.compile(re.escape(pattern) if "F" in flags else pattern, re.I if "i" in flags else 0)
    except re.error:
        io.err.write("grep: Invalid regular expression\n")
        return 2
    inputs, code = _inputs(sh, paths, io, "grep")
    found = 0
    for name, data in inputs:
        hits = [
            line for line in data.decode("utf-8", "replace").splitlines() if bool(rx.search(line)) != ("v" in flags)
        ]
        found += len(hits)
        if "q" in flags:
            continue
        if "c" in flags:
            io.out.write((f"{name}:" if len(inputs) > 1 else "") + f"{len(hits)}\n")
            continue
        for line in hits:
            io.out.write((f"{name}:" if len(inputs) > 1 else "") + line + "\n")
    return 2 if code else (0 if found else 1)


def sort(sh: Shell, args: list[str], io: IO) -> int:
    flags, paths = _split_flags(args)
    inputs, code = _inputs(sh, paths, io, "sort")
    lines = [line for _, d in inputs for line in d.decode("utf-8", "replace").splitlines()]
    key = (lambda s: float(s.split()[0]) if s.split() and _isnum(s.split()[0]) else 0.0) if "n" in flags else None
    lines.sort(key=key, reverse="r" in flags)  # type: ignore[arg-type]
    if "u" in flags:
        lines = list(dict.fromkeys(lines))
    io.out.write("".join(line + "\n" for line in lines))
    return code


def _isnum(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def tee(sh: Shell, args: list[str], io: IO) -> int:
    flags, paths = _split_flags(args)
    for p in paths:
        sh.fs.write(sh.abs(p), io.stdin, append="a" in flags)
    io.out.write(io.stdin)
    return 0


def seq(sh: Shell, args: list[str], io: IO) -> int:
    try:
        nums = [int(a) for a in args]
    except ValueError:
        io.err.write(f"seq: invalid argument: '{args}'\n")
        return 1
    first, step, last = {1: (1, 1, nums[0] if nums else 0), 2: (nums[0], 1, nums[-1]), 3: tuple(nums)}.get(
        len(nums), (1, 1, 0)
    )
    values = range(first, last + (1 if step > 0 else -1), step or 1)
    if len(values) > MAX_SEQ:
        io.err.write("seq: too many numbers for the simulated shell\n")
        return 1
    io.out.write("".join(f"{v}\n" for v in values))
    return 0


# -- files ----------------------------------------------------------------------------------
def pwd(sh: Shell, args: list[str], io: IO) -> int:
    io.out.write(sh.cwd + "\n")
    return 0


def cd(sh: Shell, args: list[str], io: IO) -> int:
    target = sh.abs(args[0]) if args else sh.home
    try:
        node = sh.fs.stat(target)
    except OSError as exc:
        io.err.write(f"{sh.name}: cd: {args[0] if args else target}: {why(exc)}\n")
        return 1
    if not node.is_dir:
        io.err.write(f"{sh.name}: cd: {args[0]}: Not a directory\n")
        return 1
    sh.cwd = sh.env["PWD"] = target
    return 0


def ls(sh: Shell, args: list[str], io: IO) -> int:
    flags, paths = _split_flags(args)
    code = 0
    for p in paths or ["."]:
        try:
            node = sh.fs.lstat(sh.abs(p)) if "l" in flags else sh.fs.stat(sh.abs(p))
            if node.is_link and "l" not in flags:
                node = sh.fs.stat(sh.abs(p))
        except OSError:
            io.err.write(f"ls: cannot access '{p}': No such file or directory\n")
            code = 2
            continue
        is_dir = not node.is_link and node.is_dir
        if is_dir and len(paths) > 1:
            io.out.write(f"{p}:\n")
        listing = [(n.name, n) for n in sh.fs.ls(sh.abs(p))] if is_dir else [(p, node)]
        for name, n in listing:
            if name.startswith(".") and "a" not in flags and is_dir:
                continue
            if "l" in flags:
                when = time.strftime("%b %d %H:%M", time.localtime(n.mtime))
                size = len(n.link_target or "") if n.is_link else n.size
                arrow = f" -> {n.link_target}" if n.is_link else ""
                io.out.write(f"{n.mode_string} 1 {n.owner} {n.group} {size:>8} {when} {name}{arrow}\n")
            else:
                io.out.write(name + "\n")
    return code


def mkdir(sh: Shell, args: list[str], io: IO) -> int:
    flags, paths = _split_flags(args)
    code = 0
    for p in paths:
        try:
            sh.fs.mkdir(sh.abs(p), parents="p" in flags, exist_ok="p" in flags)
        except OSError as exc:
            io.err.write(f"mkdir: cannot create directory '{p}': {why(exc)}\n")
            code = 1
    return code


def rm(sh: Shell, args: list[str], io: IO) -> int:
    flags, paths = _split_flags(args)
    code = 0
    for p in paths:
        try:
            node = sh.fs.lstat(sh.abs(p))
            if node.is_dir and not node.is_link and "r" not in flags.lower():
                io.err.write(f"rm: cannot remove '{p}': Is a directory\n")
                code = 1
                continue
            sh.fs.remove(sh.abs(p), recursive=True)
        except OSError as exc:
            if "f" not in flags:
                io.err.write(f"rm: cannot remove '{p}': {why(exc)}\n")
                code = 1
    return code


def rmdir(sh: Shell, args: list[str], io: IO) -> int:
    code = 0
    for p in args:
        try:
            if sh.fs.ls(sh.abs(p)) or not sh.fs.stat(sh.abs(p)).is_dir:
                raise OSError(39, "Directory not empty")
            sh.fs.remove(sh.abs(p))
        except OSError as exc:
            io.err.write(f"rmdir: failed to remove '{p}': {why(exc)}\n")
            code = 1
    return code


def touch(sh: Shell, args: list[str], io: IO) -> int:
    _, paths = _split_flags(args)
    code = 0
    for p in paths:
        path = sh.abs(p)
        try:
            if sh.fs.exists(path):
                sh.fs.stat(path).mtime = time.time()
            else:
                sh.fs.write(path, b"")
        except OSError as exc:
            io.err.write(f"touch: cannot touch '{p}': {why(exc)}\n")
            code = 1
    return code


def _dest(sh: Shell, src: str, dst: str, many: bool) -> str:
    target = sh.abs(dst)
    if many or (sh.fs.exists(target) and sh.fs.stat(target).is_dir):
        return posixpath.join(target, posixpath.basename(src.rstrip("/")))
    return target


def cp(sh: Shell, args: list[str], io: IO) -> int:
    flags, paths = _split_flags(args)
    if len(paths) < 2:
        io.err.write(f"cp: missing destination file operand after '{paths[0] if paths else ''}'\n")
        return 1
    *sources, dst = paths
    if len(sources) > 1 and not (sh.fs.exists(sh.abs(dst)) and sh.fs.stat(sh.abs(dst)).is_dir):
        io.err.write(f"cp: target '{dst}' is not a directory\n")
        return 1
    code = 0
    for src in sources:
        try:
            node = sh.fs.stat(sh.abs(src))
        except OSError as exc:
            io.err.write(f"cp: cannot stat '{src}': {why(exc)}\n")
            code = 1
            continue
        if node.is_dir and not ({"r", "R", "a"} & set(flags)):
            io.err.write(f"cp: -r not specified; omitting directory '{src}'\n")
            code = 1
            continue
        target = _dest(sh, src, dst, len(sources) > 1)
        if node.is_dir and (target + "/").startswith(sh.abs(src).rstrip("/") + "/"):
            io.err.write(f"cp: cannot copy a directory, '{src}', into itself, '{dst}'\n")
            code = 1
            continue
        try:
            if node.is_dir:
                sh.fs.attach(target, archive.copy_tree(node))
            else:
                sh.fs.write(target, bytes(node.data)).mode = node.mode
        except OSError as exc:
            io.err.write(f"cp: cannot create regular file '{dst}': {why(exc)}\n")
            code = 1
    return code


def mv(sh: Shell, args: list[str], io: IO) -> int:
    _, paths = _split_flags(args)
    if len(paths) < 2:
        io.err.write(f"mv: missing destination file operand after '{paths[0] if paths else ''}'\n")
        return 1
    *sources, dst = paths
    code = 0
    for src in sources:
        if not sh.fs.lexists(sh.abs(src)):
            io.err.write(f"mv: cannot stat '{src}': No such file or directory\n")
            code = 1
            continue
        target = _dest(sh, src, dst, len(sources) > 1)
        if (target + "/").startswith(sh.abs(src).rstrip("/") + "/"):
            io.err.write(f"mv: cannot move '{src}' to a subdirectory of itself, '{dst}'\n")
            code = 1
            continue
        try:
            node = sh.fs.detach(sh.abs(src))
            try:
                sh.fs.attach(target, node)
            except OSError:
                sh.fs.attach(sh.abs(src), node)  # put it back: nothing half-done
                raise
        except OSError as exc:
            io.err.write(f"mv: cannot move '{src}' to '{dst}': {why(exc)}\n")
            code = 1
    return code


def ln(sh: Shell, args: list[str], io: IO) -> int:
    flags, paths = _split_flags(args)
    if not paths:
        io.err.write("ln: missing file operand\n")
        return 1
    target = paths[0]
    link = paths[1] if len(paths) > 1 else posixpath.basename(target.rstrip("/"))
    path = sh.abs(link)
    if sh.fs.exists(path) and sh.fs.stat(path).is_dir and "n" not in flags and "T" not in flags:
        path = posixpath.join(path, posixpath.basename(target.rstrip("/")))
    try:
        if sh.fs.lexists(path):
            if "f" not in flags:
                raise FileExistsError(path)
            sh.fs.remove(path)
        if "s" in flags:
            sh.fs.symlink(target, path)
        else:
            sh.fs.link(sh.abs(target), path)
    except OSError as exc:
        kind = "symbolic link" if "s" in flags else "hard link"
        io.err.write(f"ln: failed to create {kind} '{link}': {why(exc)}\n")
        return 1
    return 0


def chmod(sh: Shell, args: list[str], io: IO) -> int:
    if len(args) < 2:
        io.err.write("chmod: missing operand\n")
        return 1
    mode, paths = args[0], args[1:]
    code = 0
    for p in paths:
        try:
            node = sh.fs.stat(sh.abs(p))
            if re.fullmatch(r"[0-7]{1,4}", mode):
                node.mode = int(mode, 8)
            elif m := re.fullmatch(r"([ugoa]*)([+-])([rwx]+)", mode):
                who = m.group(1) or "a"
                bits = 0
                for w in who.replace("a", "ugo"):
                    shift = {"u": 6, "g": 3, "o": 0}[w]
                    for r in m.group(3):
                        bits |= {"r": 4, "w": 2, "x": 1}[r] << shift
                node.mode = node.mode | bits if m.group(2) == "+" else node.mode & ~bits
            else:
                io.err.write(f"chmod: invalid mode: '{mode}'\n")
                return 1
        except OSError as exc:
            io.err.write(f"chmod: cannot access '{p}': {why(exc)}\n")
            code = 1
    return code


def tar(sh: Shell, args: list[str], io: IO) -> int:
    if not args:
        io.err.write("tar: You must specify one of the '-Acdtrux', '--delete' or '--test-label' options\n")
        return 2
    opts, rest = args[0].lstrip("-"), list(args[1:])
    file_name, base, names = None, sh.cwd, []
    i = 0
    needs_file = "f" in opts
    while i < len(rest):
        a = rest[i]
        if needs_file and file_name is None and not a.startswith("-"):
            file_name = a
        elif a == "-C" and i + 1 < len(rest):
            base = sh.abs(rest[i + 1])
            i += 1
        elif a.startswith("-") and len(a) > 1:
            opts += a.lstrip("-") if not a.startswith("--") else ""
            needs_file = needs_file or "f" in a
        else:
            names.append(a)
        i += 1
    compress = "gz" if "z" in opts else "bz2" if "j" in opts else "xz" if "J" in opts else ""
    try:
        if "c" in opts:
            if not names:
                io.err.write("tar: Cowardly refusing to create an empty archive\n")
                return 2
            data = archive.create(sh.fs, base, names, compress)
            if file_name in (None, "-"):
                io.out.write(data)
            else:
                sh.fs.write(sh.abs(file_name), data)
            if "v" in opts:
                for m in archive.members(data):
                    io.out.write(m.name + ("/" if m.isdir() else "") + "\n")
            return 0
        data = io.stdin if file_name in (None, "-") else sh.fs.read(sh.abs(file_name))
        if "t" in opts:
            for m in archive.members(data):
                io.out.write(m.name + ("/" if m.isdir() else "") + "\n")
            return 0
        if "x" in opts:
            for name in archive.extract(sh.fs, data, base):
                if "v" in opts:
                    io.out.write(name + "\n")
            return 0
    except archive.ArchiveError as exc:
        io.err.write(f"{exc}\ntar: Error is not recoverable: exiting now\n")
        return 2
    except OSError as exc:
        io.err.write(f"tar: {file_name}: Cannot open: {why(exc)}\n")
        return 2
    io.err.write("tar: You must specify one of the '-Acdtrux', '--delete' or '--test-label' options\n")
    return 2


def basename(sh: Shell, args: list[str], io: IO) -> int:
    if not args:
        io.err.write("basename: missing operand\n")
        return 1
    name = posixpath.basename(args[0].rstrip("/")) or "/"
    if len(args) > 1 and name.endswith(args[1]) and name != args[1]:
        name = name[: -len(args[1])]
    io.out.write(name + "\n")
    return 0


def dirname(sh: Shell, args: list[str], io: IO) -> int:
    if not args:
        io.err.write("dirname: missing operand\n")
        return 1
    io.out.write((posixpath.dirname(args[0].rstrip("/")) or ".") + "\n")
    return 0


def find(sh: Shell, args: list[str], io: IO) -> int:
    start = args[0] if args and not args[0].startswith("-") else "."
    pattern, kind = None, None
    if "-name" in args:
        pattern = args[args.index("-name") + 1] if args.index("-name") + 1 < len(args) else None
    if "-type" in args and args.index("-type") + 1 < len(args):
        kind = args[args.index("-type") + 1]
    try:
        root = sh.fs.stat(sh.abs(start))
    except OSError as exc:
        io.err.write(f"find: '{start}': {why(exc)}\n")
        return 1
    stack = [(start, root)]
    while stack:
        path, node = stack.pop()
        ok = (pattern is None or fnmatch.fnmatchcase(posixpath.basename(path), pattern)) and (
            kind is None or (kind == "d") == node.is_dir
        )
        if ok:
            io.out.write(path + "\n")
        if node.is_dir and not node.is_link:
            for name in sorted(node.children, reverse=True):
                stack.append((f"{path.rstrip('/')}/{name}", node.children[name]))
    return 0


# -- the shell itself -----------------------------------------------------------------------
def sleep(sh: Shell, args: list[str], io: IO) -> int:
    total = 0.0
    for a in args:
        m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", a)
        if not m:
            io.err.write(f"sleep: invalid time interval '{a}'\n")
            return 1
        total += float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if not args:
        io.err.write("sleep: missing operand\n")
        return 1
    sh.sleep(total)
    return 0


def exit_(sh: Shell, args: list[str], io: IO) -> int:
    if not args:
        raise Exit(sh.status)
    try:
        raise Exit(int(args[0]) % 256)
    except ValueError:
        io.err.write(f"{sh.name}: exit: {args[0]}: numeric argument required\n")
        raise Exit(2) from None


def bash(sh: Shell, args: list[str], io: IO) -> int:
    """``bash [-lex...] -c 'text' [name args...]`` or ``bash script [args]``: a child shell."""
    letters, i = "", 0
    while i < len(args) and args[i][:1] in "-+" and len(args[i]) > 1 and args[i] != "--":
        if args[i] in ("-o", "+o"):
            i += 1  # -o option: its name follows
        else:
            letters += args[i][1:]
        i += 1
    rest = args[i + (1 if args[i : i + 1] == ["--"] else 0) :]
    if "c" in letters:
        if not rest:
            io.err.write(f"{sh.name}: -c: option requires an argument\n")
            return 2
        text, extra = rest[0], rest[1:]
        return sh.run_child(text, extra[1:], io, name=extra[0] if extra else None, errexit="e" in letters)
    if not rest:
        return sh.run_child(io.stdin.decode("utf-8", "replace"), [], io, errexit="e" in letters)
    try:
        text = sh.fs.read(sh.abs(rest[0])).decode("utf-8", "replace")
    except OSError as exc:
        io.err.write(f"bash: {rest[0]}: {why(exc)}\n")
        return 127
    return sh.run_child(text, rest[1:], io, name=rest[0], errexit="e" in letters)


def source(sh: Shell, args: list[str], io: IO) -> int:
    """``source file``: run it in this shell (its variables and ``cd`` stay)."""
    if not args:
        io.err.write(f"{sh.name}: source: filename argument required\n")
        return 2
    try:
        text = sh.fs.read(sh.abs(args[0])).decode("utf-8", "replace")
    except OSError as exc:
        io.err.write(f"{sh.name}: {args[0]}: {why(exc)}\n")
        return 1
    from simulators.common.shell_parse import ShellSyntaxError, parse

    if sh.depth >= MAX_DEPTH:
        raise Killed("maximum nesting depth exceeded")
    sh.depth += 1  # a file sourcing itself must end, as bash's does at its own limit
    try:
        return sh.block(parse(text), io)
    except ShellSyntaxError as exc:
        io.err.write(f"{args[0]}: line {exc.line}: {exc}\n")
        return 2
    finally:
        sh.depth -= 1


def export(sh: Shell, args: list[str], io: IO) -> int:
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key.isidentifier():
            sh.env[key] = value
        elif not key.isidentifier() and key != "-n":
            io.err.write(f"{sh.name}: export: `{a}': not a valid identifier\n")
            return 1
    return 0


def set_(sh: Shell, args: list[str], io: IO) -> int:
    """``set -e``/``+e``/``-o errexit``; other options (-u, -x, pipefail) change nothing here."""
    for k, a in enumerate(args):
        if a.startswith(("-", "+")) and "e" in a[1:] and not a.startswith(("-o", "+o")):
            sh.errexit = a[0] == "-"
        elif a in ("-o", "+o") and args[k + 1 : k + 2] == ["errexit"]:
            sh.errexit = a == "-o"
    return 0


def unset(sh: Shell, args: list[str], io: IO) -> int:
    for a in args:
        sh.env.pop(a, None)
    return 0


def env(sh: Shell, args: list[str], io: IO) -> int:
    assigns = []
    while args and "=" in args[0] and args[0].split("=", 1)[0].isidentifier():
        assigns.append(args[0].split("=", 1))
        args = args[1:]
    if not args:
        merged = {**sh.env, **dict(assigns)}
        io.out.write("".join(f"{k}={v}\n" for k, v in sorted(merged.items())))
        return 0
    saved = dict(sh.env)
    sh.env.update(dict(assigns))
    try:
        return sh.run_words(args, io)
    finally:
        sh.env = saved


def printenv(sh: Shell, args: list[str], io: IO) -> int:
    if not args:
        return env(sh, [], io)
    code = 0
    for name in args:
        if name in sh.env:
            io.out.write(sh.env[name] + "\n")
        else:
            code = 1
    return code


def test(sh: Shell, args: list[str], io: IO) -> int:
    return _test(sh, args, io)


def bracket(sh: Shell, args: list[str], io: IO) -> int:
    if not args or args[-1] != "]":
        io.err.write("[: missing `]'\n")
        return 2
    return _test(sh, args[:-1], io)


def double_bracket(sh: Shell, args: list[str], io: IO) -> int:
    """``[[ ... ]]`` as a command: test's operators plus ``==``/``!=`` glob patterns and
    ``=~`` regular expressions (words are expanded before it sees them)."""
    if not args or args[-1] != "]]":
        io.err.write(f"{sh.name}: syntax error: expected `]]'\n")
        return 2
    a = args[:-1]
    negate = bool(a) and a[0] == "!"
    if negate:
        a = a[1:]
    if len(a) == 3 and a[1] in ("==", "=", "!="):
        hit = fnmatch.fnmatchcase(a[0], a[2])
        code = 0 if hit == (a[1] != "!=") else 1
    elif len(a) == 3 and a[1] == "=~":
        try:
            code = 0 if re.search(a[2], a[0]) else 1
        except re.error:
            return 2
    else:
        code = _test(sh, a, io)
    return (1 - code if code in (0, 1) else code) if negate else code


def _test(sh: Shell, a: list[str], io: IO) -> int:
    if not a:
        return 1
    if a[0] == "!":
        return 1 - _test(sh, a[1:], io) if _test(sh, a[1:], io) in (0, 1) else 2
    if len(a) == 1:
        return 0 if a[0] else 1
    if len(a) == 2:
        op, x = a
        path = sh.abs(x) if x else ""
        checks: dict[str, Callable[[], bool]] = {
            "-n": lambda: bool(x),
            "-z": lambda: not x,
            "-e": lambda: sh.fs.exists(path),
            "-f": lambda: sh.fs.exists(path) and not sh.fs.stat(path).is_dir,
            "-d": lambda: sh.fs.exists(path) and sh.fs.stat(path).is_dir,
            "-s": lambda: sh.fs.exists(path) and sh.fs.stat(path).size > 0,
            "-L": lambda: sh.fs.lexists(path) and sh.fs.lstat(path).is_link,
            "-h": lambda: sh.fs.lexists(path) and sh.fs.lstat(path).is_link,
            "-r": lambda: sh.fs.exists(path),
            "-w": lambda: sh.fs.exists(path),
            "-x": lambda: sh.fs.exists(path) and bool(sh.fs.stat(path).mode & 0o111),
        }
        if op in checks:
            return 0 if checks[op]() else 1
        io.err.write(f"test: {op}: unary operator expected\n")
        return 2
    if len(a) == 3:
        x, op, y = a
        if op in ("=", "=="):
            return 0 if x == y else 1
        if op == "!=":
            return 0 if x != y else 1
        ints = {"-eq": "__eq__", "-ne": "__ne__", "-lt": "__lt__", "-le": "__le__", "-gt": "__gt__", "-ge": "__ge__"}
        if op in ints:
            try:
                return 0 if getattr(int(x), ints[op])(int(y)) else 1
            except ValueError:
                io.err.write(f"test: {x if not x.lstrip('-').isdigit() else y}: integer expression expected\n")
                return 2
    io.err.write("test: too many arguments\n")
    return 2


# -- launchers ------------------------------------------------------------------------------
_SRUN_VALUE = set("nNcGtJopAwmCdDeiBxSTbQ") - {"Q"}  # short options that take a value
_SRUN_FLAGS = {"l", "v", "u", "K", "X", "E", "Q", "Z", "s", "O", "H", "k", "I"}


def _launch(sh: Shell, args: list[str], io: IO, kind: str) -> int:
    """``srun``/``mpiexec`` [options] cmd ...: the command once per task, each with its rank
    in the launcher's variables.  Tasks run one after another; their ``sleep``s overlap."""
    ntasks: int | None = None
    nodes: int | None = None
    per_node: int | None = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        a = args[i]
        name, eq, value = a.partition("=")
        takes = (
            (name.startswith("--") and not eq and name not in _LONG_FLAGS)
            or (not name.startswith("--") and len(name) == 2 and name[1] in _SRUN_VALUE)
            or (kind == "pbs" and name in ("-np", "-ppn", "-hostfile", "-env", "-genv", "-depth", "-d"))
        )
        if not name.startswith("--") and len(name) > 2 and kind == "slurm":
            name, value, takes = name[:2], name[2:], False  # -n4
        if takes and not eq:
            if i + 1 >= len(args):
                io.err.write(f"{kind_name(kind)}: option '{a}' requires an argument\n")
                return 1
            value = args[i + 1]
            i += 1
        try:
            if name in ("-n", "--ntasks", "--np", "-np", "--n"):
                ntasks = int(value)
            elif name in ("-N", "--nodes"):
                nodes = int(value.split("-")[0])
            elif name in ("--ntasks-per-node", "--ppn", "-ppn"):
                per_node = int(value)
        except ValueError:
            io.err.write(f'{kind_name(kind)}: error: Invalid numeric value "{value}" for {name}\n')
            return 1
        i += 1
    cmd = args[i:]
    if not cmd:
        io.err.write(f"{kind_name(kind)}: fatal: No command given\n")
        return 1
    job = sh.launch
    alloc_nodes = nodes or job.nodes
    if ntasks is None:
        if per_node is not None:
            ntasks = per_node * alloc_nodes
        elif nodes is not None or kind == "pbs":
            ntasks = alloc_nodes
        else:
            ntasks = job.ntasks
    if ntasks < 1 or alloc_nodes < 1:
        io.err.write(f"{kind_name(kind)}: error: invalid task or node count\n")
        return 1
    if job.scheduler != "none" and (alloc_nodes > job.nodes or ntasks > job.nodes * job.max_tasks_per_node):
        if kind == "slurm":
            io.err.write(
                f"srun: error: Unable to create step for job {sh.env.get('SLURM_JOB_ID', '')}: "
                "More processors requested than permitted\n"
            )
        else:
            io.err.write("mpiexec: error: not enough slots available in the allocation\n")
        return 1
    if ntasks > MAX_TASKS:
        io.err.write(f"{kind_name(kind)}: error: the simulated launcher runs at most {MAX_TASKS} tasks\n")
        return 1
    start, longest, code, host = sh.slept, 0.0, 0, sh.host
    names = job.node_names or [sh.host]
    saved = {k: sh.env.get(k) for k in (*job.rank_vars, "SLURM_LOCALID", "SLURM_NODEID", "SLURMD_NODENAME")}
    try:
        for rank in range(ntasks):
            sh.slept = start
            node_index = min(rank * alloc_nodes // ntasks, len(names) - 1)
            for var in job.rank_vars:
                sh.env[var] = str(rank)
            if kind == "slurm":
                sh.env["SLURM_NODEID"] = str(node_index)
                sh.env["SLURMD_NODENAME"] = names[node_index]
                sh.env["SLURM_LOCALID"] = str(rank % max(1, -(-ntasks // alloc_nodes)))
            sh.host = names[node_index]
            rc = sh.run_words(cmd, io)
            code = max(code, rc)
            longest = max(longest, sh.slept - start)
    finally:
        sh.slept, sh.host = start, host
        for k, v in saved.items():
            if v is None:
                sh.env.pop(k, None)
            else:
                sh.env[k] = v
    sh.sleep(longest)
    if code and kind == "slurm":
        io.err.write(f"srun: error: {names[0]}: task 0: Exited with exit code {code}\n")
    return code


_LONG_FLAGS = {
    "--label", "--exclusive", "--overlap", "--unbuffered", "--verbose", "--quiet", "--kill-on-bad-exit",
    "--no-kill", "--envall", "--no-transfer", "--line-buffer", "--exact", "--mpi=pmix", "--pty",
    "--no-vni", "--verbose-level",
}  # fmt: skip


def kind_name(kind: str) -> str:
    return "srun" if kind == "slurm" else "mpiexec"


def srun(sh: Shell, args: list[str], io: IO) -> int:
    return _launch(sh, args, io, "slurm")


def mpiexec(sh: Shell, args: list[str], io: IO) -> int:
    return _launch(sh, args, io, "pbs")


def _const(text: Callable[[Shell], str]) -> Handler:
    def handler(sh: Shell, args: list[str], io: IO) -> int:
        io.out.write(text(sh))
        return 0

    return handler


COMMANDS: dict[str, Handler] = {
    "echo": echo,
    "printf": printf,
    "cat": cat,
    "head": head,
    "tail": tail,
    "wc": wc,
    "grep": grep,
    "sort": sort,
    "tee": tee,
    "seq": seq,
    "pwd": pwd,
    "cd": cd,
    "ls": ls,
    "mkdir": mkdir,
    "rm": rm,
    "rmdir": rmdir,
    "touch": touch,
    "cp": cp,
    "mv": mv,
    "ln": ln,
    "chmod": chmod,
    "tar": tar,
    "basename": basename,
    "dirname": dirname,
    "find": find,
    "sleep": sleep,
    "exit": exit_,
    "bash": bash,
    "sh": bash,
    "source": source,
    ".": source,
    "export": export,
    "unset": unset,
    "env": env,
    "printenv": printenv,
    "test": test,
    "[": bracket,
    "[[": double_bracket,
    "srun": srun,
    "mpiexec": mpiexec,
    "mpirun": mpiexec,
    "true": lambda sh, a, io: 0,
    ":": lambda sh, a, io: 0,
    "false": lambda sh, a, io: 1,
    "wait": lambda sh, a, io: 0,  # background jobs ran in order already
    "module": lambda sh, a, io: 0,  # environment modules: nothing to load in a simulation
    "ml": lambda sh, a, io: 0,
    "set": set_,
    "ulimit": lambda sh, a, io: 0,
    "hostname": _const(lambda sh: sh.host + "\n"),
    "whoami": _const(lambda sh: sh.user + "\n"),
    "id": _const(lambda sh: f"uid={sh.uid}({sh.user}) gid={sh.uid}({sh.user}) groups={sh.uid}({sh.user})\n"),
    "date": _const(lambda sh: time.strftime("%a %b %d %H:%M:%S %Z %Y") + "\n"),
    "nproc": _const(lambda sh: "256\n"),
    "uname": _const(lambda sh: "Linux\n"),
}
