"""``#SBATCH`` directives read the way ``sbatch`` reads them (pure functions).

Slurm scans a batch script from its second line and stops at the first line that is
neither blank nor a comment; only lines *starting* with ``#SBATCH`` count (an indented one
is an ordinary comment, the cause of sfapi_client issue #74).  Options take ``--opt=value``,
``--opt value`` or the short ``-N 2`` forms.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

# short option -> long option (sbatch(1))
SHORT = {
    "-A": "account",
    "-C": "constraint",
    "-D": "chdir",
    "-J": "job-name",
    "-N": "nodes",
    "-c": "cpus-per-task",
    "-e": "error",
    "-G": "gpus",
    "-i": "input",
    "-L": "licenses",
    "-n": "ntasks",
    "-o": "output",
    "-p": "partition",
    "-q": "qos",
    "-t": "time",
    "-d": "dependency",
    "-w": "nodelist",
    "-x": "exclude",
    "-a": "array",
}
# long options that take no value
FLAGS = frozenset(
    {
        "exclusive",
        "requeue",
        "no-requeue",
        "overcommit",
        "contiguous",
        "oversubscribe",
        "hold",
        "parsable",
        "spread-job",
        "use-min-nodes",
        "wait",
    }
)
# every other long option sbatch knows and the simulator tolerates (values not checked)
KNOWN = frozenset(
    {
        "account",
        "array",
        "begin",
        "chdir",
        "cluster-constraint",
        "clusters",
        "comment",
        "constraint",
        "core-spec",
        "cores-per-socket",
        "cpu-freq",
        "cpus-per-gpu",
        "cpus-per-task",
        "deadline",
        "delay-boot",
        "dependency",
        "distribution",
        "error",
        "exclude",
        "export",
        "export-file",
        "get-user-env",
        "gid",
        "gpu-bind",
        "gpu-freq",
        "gpus",
        "gpus-per-node",
        "gpus-per-socket",
        "gpus-per-task",
        "gres",
        "gres-flags",
        "hint",
        "ignore-pbs",
        "input",
        "job-name",
        "kill-on-invalid-dep",
        "licenses",
        "mail-type",
        "mail-user",
        "mcs-label",
        "mem",
        "mem-bind",
        "mem-per-cpu",
        "mem-per-gpu",
        "mincpus",
        "network",
        "nice",
        "nodefile",
        "nodelist",
        "nodes",
        "ntasks",
        "ntasks-per-core",
        "ntasks-per-gpu",
        "ntasks-per-node",
        "ntasks-per-socket",
        "open-mode",
        "output",
        "partition",
        "power",
        "prefer",
        "priority",
        "profile",
        "propagate",
        "qos",
        "reboot",
        "reservation",
        "signal",
        "sockets-per-node",
        "switches",
        "thread-spec",
        "threads-per-core",
        "time",
        "time-min",
        "tmp",
        "uid",
        "wckey",
        "wrap",
        "burst-buffer",
        "bb",
        "bbf",
        "acctg-freq",
        "batch",
        "container",
        "extra-node-info",
        "mem-per-node",
        "tres-per-task",
    }
    | FLAGS
)


class DirectiveError(ValueError):
    """``str(exc)`` is what sbatch prints."""


@dataclass
class Directives:
    options: dict[str, str] = field(default_factory=dict)
    body: str = ""  # the script after the directive block: the job's commands

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.options.get(name, default)


def _tokens(rest: str) -> list[str]:
    try:
        return shlex.split(rest, comments=False)
    except ValueError:
        return rest.split()


def parse_directives(script: str) -> Directives:
    """The ``#SBATCH`` options of a script (long names without dashes) and its body."""
    lines = script.split("\n")
    out = Directives()
    i = 1 if lines and lines[0].startswith("#!") else 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        if line.startswith("#SBATCH"):
            _parse_line(_tokens(line[len("#SBATCH") :]), out.options)
        i += 1
    out.body = "\n".join(lines[i:])
    return out


def _parse_line(tokens: list[str], options: dict[str, str]) -> None:
    j = 0
    while j < len(tokens):
        tok = tokens[j]
        j += 1
        if tok.startswith("#"):  # the rest of the line is a comment
            return
        if tok.startswith("--"):
            name, eq, value = tok[2:].partition("=")
            if name not in KNOWN:
                raise DirectiveError(f"sbatch: unrecognized option '--{name}'")
            if not eq and name not in FLAGS:
                if j >= len(tokens):
                    raise DirectiveError(f"sbatch: option '--{name}' requires an argument")
                value = tokens[j]
                j += 1
            options[name] = value if (eq or name not in FLAGS) else ""
        elif tok.startswith("-") and len(tok) >= 2:
            flag, value = tok[:2], tok[2:]
            short = SHORT.get(flag)
            if short is None:
                raise DirectiveError(f"sbatch: invalid option -- '{flag[1:]}'")
            name = short
            if not value:
                if j >= len(tokens):
                    raise DirectiveError(f"sbatch: option requires an argument -- '{flag[1:]}'")
                value = tokens[j]
                j += 1
            options[name] = value.lstrip("=")
        else:
            # sbatch stops option processing at the first non-option word on a line
            return


def parse_time(text: str) -> int:
    """Slurm ``--time`` (``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``) in seconds."""
    t = text.strip()
    if t.lower() in ("infinite", "unlimited"):
        return 365 * 86400
    try:
        days = 0
        if "-" in t:
            d, t = t.split("-", 1)
            days = int(d)
            parts = [int(p) for p in t.split(":")] + [0, 0]
            h, m, s = parts[:3]
        else:
            parts = [int(p) for p in t.split(":")]
            if len(parts) == 1:
                h, m, s = 0, parts[0], 0
            elif len(parts) == 2:
                h, m, s = 0, parts[0], parts[1]
            elif len(parts) == 3:
                h, m, s = parts
            else:
                raise ValueError(t)
    except ValueError:
        raise DirectiveError(f"sbatch: error: Invalid --time specification: {text}") from None
    if min(days, h, m, s) < 0:
        raise DirectiveError(f"sbatch: error: Invalid --time specification: {text}")
    return days * 86400 + h * 3600 + m * 60 + s


def parse_nodes(text: str) -> int:
    """``--nodes=N`` or ``N-M`` (the minimum counts)."""
    try:
        return int(text.split("-", 1)[0])
    except ValueError:
        raise DirectiveError(f"sbatch: error: invalid node count `{text}'") from None


def format_time(seconds: float) -> str:
    """Slurm's time columns: ``D-HH:MM:SS`` past a day, else ``HH:MM:SS``."""
    s = int(seconds)
    days, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    return f"{days}-{h:02d}:{m:02d}:{sec:02d}" if days else f"{h:02d}:{m:02d}:{sec:02d}"


def format_squeue_time(seconds: float) -> str:
    """squeue's compact ``TIME``: ``M:SS``, ``H:MM:SS``, ``D-HH:MM:SS``."""
    s = int(seconds)
    days, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    if days:
        return f"{days}-{h:02d}:{m:02d}:{sec:02d}"
    if h:
        return f"{h}:{m:02d}:{sec:02d}"
    return f"{m}:{sec:02d}"
