"""Slurm vocabulary shared by the SF API and FirecREST adapters (both front Slurm).

``STATE_MAP``: every Slurm job state (``squeue --help``/``sacct`` JOB STATE CODES, the set
sfapi_client models) to the PSI/J state the broker uses.  ``render_sbatch`` turns a PSI/J
spec into a batch script.  Both are pure.
"""

from __future__ import annotations

import re
import shlex

from adapters import validation as v
from adapters.psij import JobSpec
from adapters.tags import COMMENT_PREFIX, tag_comment, tag_from_comment
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


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.+-]")
_INT = v.whole(r"[0-9]+")
_TIME = v.whole(r"(?:[0-9]+-)?[0-9]{2}:[0-9]{2}:[0-9]{2}")
_MEM = v.whole(r"[0-9]+M")
_JOB_NAME = v.whole(r"[A-Za-z0-9_.+-]{1,100}")
_COMMENT = v.whole(re.escape(COMMENT_PREFIX) + r"[A-Za-z0-9_-]{1,64}")
# The pattern each directive's value must match whole before it is written (values ride
# unquoted on an #SBATCH line; sbatch splits on blanks and reads '#' as a comment).
DIRECTIVE_PATTERNS: dict[str, str] = {
    "job-name": _JOB_NAME,
    "comment": _COMMENT,
    "account": v.ACCOUNT,
    "nodes": _INT,
    "ntasks-per-node": _INT,
    "ntasks": _INT,
    "cpus-per-task": _INT,
    "gpus-per-task": _INT,
    "mem": _MEM,
    "time": _TIME,
    "partition": v.QUEUE,
    "qos": v.QUEUE,
    "reservation": v.RESERVATION,
    "chdir": v.PATH,
    "output": v.PATH,
    "error": v.PATH,
    "export": v.whole("NONE"),
}
# The directives only the broker writes, last in the block (sbatch keeps the last of a
# repeated option, so nothing before them could override them even if it slipped through).
BROKER_DIRECTIVES = frozenset({"job-name", "comment", "account", "chdir", "output", "error", "export"})


def job_name(spec: JobSpec, tag: str) -> str:
    """The Slurm job name: the spec's name made shell- and Slurm-safe, else the tag."""
    return (_SAFE_NAME.sub("_", spec.name)[:100] if spec.name else "") or tag


def command_line(spec: JobSpec) -> str:
    return " ".join(shlex.quote(a) for a in [spec.executable, *spec.arguments])


def directive(option: str, value: str | None, field: str) -> str:
    """``--option=value`` (``--option`` for a flag) after checking both: the option is one
    sbatch knows and the value matches the option's pattern whole; else ``UnsafeJob``."""
    if option not in DIRECTIVE_PATTERNS and option not in v.SBATCH_OPTIONS:
        raise v.UnsafeJob(field, f"--{option} is not an sbatch option the broker writes")
    if value is None:
        return f"--{option}"
    v.ensure_matches(field, value, DIRECTIVE_PATTERNS.get(option, v.DIRECTIVE_VALUE))
    return f"--{option}={value}"


def sbatch_directives(spec: JobSpec, tag: str, *, account: str | None = None) -> list[str]:
    """``#SBATCH`` options for a spec, in a stable order: the resources, the custom
    attributes a user may pass (``slurm.<option>``, PSI/J's convention), then the broker's
    own (job name, tag, account, paths, environment).  The account is the broker's alone:
    a spec naming another is refused (``UnsafeJob``), never rendered."""
    v.ensure_safe(spec)
    account = v.charged_account(spec, account)
    r, a = spec.resources, spec.attributes
    out = [directive("nodes", str(spec.nodes), "spec.resources")]
    if r.processes_per_node:
        out.append(directive("ntasks-per-node", str(r.processes_per_node), "spec.resources.processes_per_node"))
    if r.process_count:
        out.append(directive("ntasks", str(r.process_count), "spec.resources.process_count"))
    if r.cpu_cores_per_process:
        out.append(directive("cpus-per-task", str(r.cpu_cores_per_process), "spec.resources.cpu_cores_per_process"))
    if r.gpu_cores_per_process:
        out.append(directive("gpus-per-task", str(r.gpu_cores_per_process), "spec.resources.gpu_cores_per_process"))
    if r.exclusive_node_use:
        out.append(directive("exclusive", None, "spec.resources.exclusive_node_use"))
    if r.memory:
        out.append(directive("mem", f"{max(1, r.memory // (1024 * 1024))}M", "spec.resources.memory"))
    if a.duration:
        out.append(directive("time", format_walltime(a.duration), "spec.attributes.duration"))
    if a.queue_name:
        qos = bool(a.custom_attributes.get("queue_is_qos"))
        out.append(directive("qos" if qos else "partition", a.queue_name, "spec.attributes.queue_name"))
    if a.reservation_id:
        out.append(directive("reservation", a.reservation_id, "spec.attributes.reservation_id"))
    for key, value in sorted(a.custom_attributes.items()):
        if key.lower().startswith(v.SLURM_PREFIX):
            option = key[len(v.SLURM_PREFIX) :]
            field = f"spec.attributes.custom_attributes.{key}"
            if option in BROKER_DIRECTIVES or option in v.SPEC_DERIVED or option not in v.SBATCH_OPTIONS:
                raise v.UnsafeJob(field, f"--{option} may not be set by a job")
            line = directive(option, None if option in v.SBATCH_FLAGS else value, field)
            if line not in out:
                out.append(line)
    out.append(directive("job-name", job_name(spec, tag), "spec.name"))
    out.append(directive("comment", tag_comment(v.ensure_matches("tag", tag, v.TAG)), "tag"))
    if account:
        out.append(directive("account", account, "account"))
    if spec.directory:
        out.append(directive("chdir", spec.directory, "spec.directory"))
    if spec.stdout_path:
        out.append(directive("output", spec.stdout_path, "spec.stdout_path"))
    if spec.stderr_path:
        out.append(directive("error", spec.stderr_path, "spec.stderr_path"))
    if not spec.inherit_environment:
        out.append(directive("export", "NONE", "spec.inherit_environment"))
    return out


def render_sbatch(spec: JobSpec, tag: str, *, account: str | None = None) -> str:
    """A complete batch script: shebang, ``#SBATCH`` lines (never indented: Slurm ignores
    indented ones), exported environment, then the one command line.  Every value was
    checked (``sbatch_directives``); environment names match ``validation.ENV_NAME`` and
    every shell word is quoted, so the body is exactly the exports and the command."""
    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH {d}" for d in sbatch_directives(spec, tag, account=account)]
    for key, value in sorted(spec.environment.items()):
        lines.append(f"export {v.ensure_matches('spec.environment', key, v.ENV_NAME)}={shlex.quote(value)}")
    lines.append(command_line(spec))
    return "\n".join(lines) + "\n"
