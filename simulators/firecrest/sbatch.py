"""``#SBATCH`` directives in a batch script, read the way sbatch reads them: from the lines
after the shebang up to the first command; later ``#SBATCH`` lines are plain comments."""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass

# short option -> long option, for the options the simulator acts on
_SHORT = {
    "N": "nodes",
    "t": "time",
    "p": "partition",
    "A": "account",
    "J": "job-name",
    "o": "output",
    "e": "error",
    "D": "chdir",
    "q": "qos",
    "i": "input",
    "n": "ntasks",
}


class DirectiveError(ValueError):
    """An option sbatch would refuse; the message is sbatch's."""


@dataclass(frozen=True)
class Directives:
    nodes: int | None = None
    walltime_s: int | None = None
    partition: str | None = None
    account: str | None = None
    comment: str | None = None
    job_name: str | None = None
    output: str | None = None
    error: str | None = None
    chdir: str | None = None
    reservation: str | None = None
    ntasks: int | None = None
    ntasks_per_node: int | None = None


def _walltime(text: str) -> int:
    """Slurm --time: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    if not re.fullmatch(r"(\d+-)?\d+(:\d+){0,2}", text):
        raise DirectiveError("sbatch: error: Invalid --time specification")
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
        parts = [int(p) for p in text.split(":")] + [0, 0]
        h, m, s = parts[:3]
    else:
        parts = [int(p) for p in text.split(":")]
        h, m, s = {1: (0, parts[0], 0), 2: (0, *parts), 3: tuple(parts)}[len(parts)]  # type: ignore[assignment]
    return days * 86400 + h * 3600 + m * 60 + s


def _options(script: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in script.splitlines()[1:] if script.startswith("#!") else script.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break  # the first command ends the directives
        if not line.startswith("#SBATCH"):
            continue
        try:
            words = shlex.split(line[len("#SBATCH") :], comments=True)
        except ValueError:
            words = line[len("#SBATCH") :].split()
        i = 0
        while i < len(words):
            w = words[i]
            if w.startswith("--"):
                key, eq, value = w[2:].partition("=")
                if not eq and i + 1 < len(words) and not words[i + 1].startswith("-"):
                    i += 1
                    value = words[i]
                out.append((key, value))
            elif w.startswith("-") and len(w) >= 2:
                key = _SHORT.get(w[1], w[1])
                value = w[2:]
                if not value and i + 1 < len(words) and not words[i + 1].startswith("-"):
                    i += 1
                    value = words[i]
                out.append((key, value))
            i += 1
    return out


@functools.lru_cache(maxsize=2048)  # clients submit the same few scripts many times
def parse_directives(script: str) -> Directives:
    found: dict[str, object] = {}
    for key, value in _options(script):
        if key == "nodes":
            low = value.split("-", 1)[0]
            if not low.isdigit() or int(low) < 1:
                raise DirectiveError("sbatch: error: Invalid node count specified")
            found["nodes"] = int(low)
        elif key == "time":
            found["walltime_s"] = _walltime(value)
        elif key in ("partition", "account", "comment", "output", "error", "chdir", "reservation"):
            found[key] = value
        elif key in ("ntasks", "ntasks-per-node"):
            if not value.isdigit() or int(value) < 1:
                raise DirectiveError(f"sbatch: error: Invalid numeric value \"{value}\" for --{key}.")
            found[key.replace("-", "_")] = int(value)
        elif key == "job-name":
            found["job_name"] = value
    return Directives(**found)  # type: ignore[arg-type]
