"""Slurm vocabulary shared by the SF API and FirecREST adapters (both front Slurm).

``STATE_MAP``: every Slurm job state (``squeue --help``/``sacct`` JOB STATE CODES, the set
sfapi_client models) to the PSI/J state the broker uses.  ``render_sbatch`` turns a PSI/J
spec into a batch script.  Both are pure.
"""

from __future__ import annotations

import re
import shlex

from adapters.psij import JobSpec
from adapters.tags import tag_comment, tag_from_comment
from adapters.types import JobState

__all__ = ["STATE_MAP", "render_sbatch", "tag_comment", "tag_from_comment"]

# Slurm base state -> PSI/J state. Source: slurm.schedmd.com/squeue.html#SECTION_JOB-STATE-CODES
STATE_MAP: dict[str, JobState] = {
    "BOOT_FAIL": "FAILED",  # terminated by a node boot failure
    "CANCELLED": "CANCELED",  # by the user or an administrator ("CANCELLED by <uid>")
    "COMPLETED": "COMPLETED",  # all processes ended with exit code 0
    "COMPLETING": "ACTIVE",  # still finishing on some nodes
    "CONFIGURING": "ACTIVE",  # allocated, nodes booting
    "DEADLINE": "FAILED",  # terminated on deadline
    "FAILED": "FAILED",  # non-zero exit code or other failure
    "NODE_FAIL": "FAILED",  # a node of the allocation failed
    "OUT_OF_MEMORY": "FAILED",  # out of memory
    "PENDING": "QUEUED",  # waiting for resources
    "PREEMPTED": "FAILED",  # preempted (and not requeued)
    "REQUEUED": "QUEUED",  # back in the queue
    "REQUEUE_FED": "QUEUED",  # requeued by a federation
    "REQUEUE_HOLD": "HELD",  # requeued and held
    "RESIZING": "ACTIVE",  # changing size
    "RESV_DEL_HOLD": "HELD",  # held after its reservation was deleted
    "REVOKED": "CANCELED",  # removed because a sibling in the federation started
    "RUNNING": "ACTIVE",
    "SIGNALING": "ACTIVE",  # being signalled
    "SPECIAL_EXIT": "HELD",  # held in a special state after a failure
    "STAGE_OUT": "ACTIVE",  # staging out data
    "STOPPED": "HELD",  # stopped with SIGSTOP; keeps its nodes
    "SUSPENDED": "HELD",  # suspended, resources released
    "TIMEOUT": "FAILED",  # hit its time limit
}


def base_state(native: str) -> str:
    """``CANCELLED by 12345`` -> ``CANCELLED``; ``RUNNING+`` -> ``RUNNING``."""
    word = native.strip().split(" ", 1)[0] if native else ""
    return word.rstrip("+").upper()


def psij_state(native: str) -> JobState | None:
    """The PSI/J state for a Slurm state word, or None when Slurm used a word we do not know."""
    return STATE_MAP.get(base_state(native))


def parse_exit_code(value: str | int | None) -> int | None:
    """sacct's ``ExitCode`` is ``code:signal``; a signal alone reads as 128+signal."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    code, _, sig = str(value).partition(":")
    try:
        c = int(code)
        s = int(sig) if sig else 0
    except ValueError:
        return None
    return c if c or not s else 128 + s


def format_walltime(seconds: int) -> str:
    """Slurm ``--time`` as D-HH:MM:SS (or HH:MM:SS under a day)."""
    days, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}-{h:02d}:{m:02d}:{s:02d}" if days else f"{h:02d}:{m:02d}:{s:02d}"


def parse_walltime(text: str) -> int:
    """Slurm time strings (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) to seconds."""
    text = text.strip()
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
        parts = [int(p) for p in text.split(":")]
        parts += [0] * (3 - len(parts))
        h, m, s = parts
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:
            h, m, s = 0, parts[0], 0
        elif len(parts) == 2:
            h, (m, s) = 0, parts
        else:
            h, m, s = parts[-3:]
    return days * 86400 + h * 3600 + m * 60 + s


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.+-]")


def job_name(spec: JobSpec, tag: str) -> str:
    """The Slurm job name: the spec's name made shell- and Slurm-safe, else the tag."""
    return _SAFE_NAME.sub("_", spec.name)[:100] if spec.name else tag


def command_line(spec: JobSpec) -> str:
    return " ".join(shlex.quote(a) for a in [spec.executable, *spec.arguments])


def sbatch_directives(spec: JobSpec, tag: str, *, account: str | None = None) -> list[str]:
    """``#SBATCH`` options for a spec, in a stable order."""
    r, a = spec.resources, spec.attributes
    out = [f"--job-name={job_name(spec, tag)}", f"--comment={tag_comment(tag)}", f"--nodes={spec.nodes}"]
    if r.processes_per_node:
        out.append(f"--ntasks-per-node={r.processes_per_node}")
    if r.process_count:
        out.append(f"--ntasks={r.process_count}")
    if r.cpu_cores_per_process:
        out.append(f"--cpus-per-task={r.cpu_cores_per_process}")
    if r.gpu_cores_per_process:
        out.append(f"--gpus-per-task={r.gpu_cores_per_process}")
    if r.exclusive_node_use:
        out.append("--exclusive")
    if r.memory:
        out.append(f"--mem={max(1, r.memory // (1024 * 1024))}M")
    if a.duration:
        out.append(f"--time={format_walltime(a.duration)}")
    if a.queue_name:
        out.append(
            f"--qos={a.queue_name}" if a.custom_attributes.get("queue_is_qos") else f"--partition={a.queue_name}"
        )
    if account or a.account:
        out.append(f"--account={account or a.account}")
    if a.reservation_id:
        out.append(f"--reservation={a.reservation_id}")
    if spec.directory:
        out.append(f"--chdir={spec.directory}")
    if spec.stdout_path:
        out.append(f"--output={spec.stdout_path}")
    if spec.stderr_path:
        out.append(f"--error={spec.stderr_path}")
    for key, value in sorted(a.custom_attributes.items()):
        # PSI/J's convention: "slurm.<option>" passes straight through as --<option>=value
        if key.startswith("slurm."):
            out.append(f"--{key[6:]}={value}")
    if not spec.inherit_environment:
        out.append("--export=NONE")
    return out


def render_sbatch(spec: JobSpec, tag: str, *, account: str | None = None) -> str:
    """A complete batch script: shebang, ``#SBATCH`` lines (never indented: Slurm ignores
    indented ones), exported environment, then the command."""
    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH {d}" for d in sbatch_directives(spec, tag, account=account)]
    for key, value in sorted(spec.environment.items()):
        lines.append(f"export {key}={shlex.quote(value)}")
    lines.append(command_line(spec))
    return "\n".join(lines) + "\n"
