"""What a job may contain: the limits and patterns for every string of a PSI/J spec that can
reach a batch script, a path or a facility's request, and the custom attributes no user may
set because they belong to the broker (the account, the tag, the output paths).

Pure and shared: ``adapters/psij.py`` puts the limits and patterns into the JobSpec's msgspec
constraints (so they show in the OpenAPI schema and a bad POST is a 422 naming the field), the
broker's intake runs ``unconstrained_problems`` for what a constraint cannot say, and the renderers run
``ensure_safe`` again (a JobSpec built in code skips msgspec's checks).  Site profiles decide
which custom attributes a site lets through (``custom_attribute_problem`` is the deny part).

Patterns are written ``whole(...)``: anchored at both ends in a way Python and JSON Schema
(ECMA-262) read alike.  ``^...$`` would not do: Python's ``$`` also matches before a final
newline, so ``"m1\\n"`` would pass ``^[a-z0-9]+$``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from adapters.errors import SiteRejected

if TYPE_CHECKING:  # only for hints: psij.py imports this module for its constraints
    from adapters.psij import JobSpec


def whole(body: str) -> str:
    """A pattern the whole string must match: ``^`` and "nothing follows" (``\\Z``, which
    ECMA-262 lacks).  msgspec uses ``re.search``, so both ends must be anchored."""
    return rf"^(?:{body})(?![\s\S])"


# -- limits (each named in the 422 that enforces it) ------------------------------------------
MAX_NAME = 200
MAX_PATH = 1024  # executable, directory, stdout_path, stderr_path
MAX_ARGUMENT = 4096
MAX_ARGUMENTS = 256
MAX_ENV = 128
MAX_ENV_NAME = 128
MAX_ENV_VALUE = 4096
MAX_QUEUE = 64
MAX_RESERVATION = 128
MAX_ACCOUNT = 64
MAX_CUSTOM = 32
MAX_CUSTOM_KEY = 64
MAX_CUSTOM_VALUE = 1024
MAX_SPEC_TEXT = 64 * 1024  # all of a spec's strings together: a script, not a payload

# -- patterns ----------------------------------------------------------------------------------
# No C0/C1 control character (NUL, TAB, LF, CR, ESC...), DEL, or Unicode line/paragraph
# separator: a line break in a value would end a directive or start a new shell command.
_PRINTABLE = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]"
TEXT = whole(rf"{_PRINTABLE}*")
# The characters a path may hold: no blank, quote, '$', '`', '\\', '#', ';', '&', '|', '<', '>'
# (a path rides unquoted in an #SBATCH line and in PBS's -o/-e); '%' is Slurm's file pattern.
PATH = whole(r"[A-Za-z0-9_./%@+=:,~-]+")
# POSIX shell variable names, but not '_' alone: bash sets $_ in every command's environment
# (to the command's path), so a job's value for it would never reach the job
ENV_NAME = whole(r"[A-Za-z][A-Za-z0-9_]*|_[A-Za-z0-9_]+")
QUEUE = whole(r"[A-Za-z0-9_.+-]+(?:,[A-Za-z0-9_.+-]+)*")  # partition/QOS/queue names, a list
RESERVATION = whole(r"[A-Za-z0-9_.+-]+(?:,[A-Za-z0-9_.+-]+)*")
ACCOUNT = whole(r"[A-Za-z0-9_.-]+")
CUSTOM_KEY = whole(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")
# A value that rides unquoted in a scheduler directive: no blank, quote, '#', '$', '\\', ';'.
DIRECTIVE_VALUE = whole(r"[A-Za-z0-9_.,:=+/@%*&|()\[\]!^~-]*")
TAG = whole(r"[A-Za-z0-9_-]{1,64}")  # the broker's job id
PROJECT = whole(r"[A-Za-z0-9_.-]{1,64}")  # a broker project (the default account name too)

DESCRIPTIONS: dict[str, str] = {
    TEXT: "printable text: no control characters (NUL, tab, CR, LF...) or line separators",
    PATH: "a path of letters, digits and _ . / % @ + = : , ~ - (no blanks, quotes or shell characters)",
    ENV_NAME: "a shell variable name: a letter or '_', then letters, digits or '_' (not '_' alone: the shell sets it)",
    QUEUE: "a queue, partition or QOS name (letters, digits, _ . + -), or a comma-separated list",
    RESERVATION: "a reservation name (letters, digits, _ . + -)",
    ACCOUNT: "an account name (letters, digits, _ . -)",
    PROJECT: "a project name: 1 to 64 letters, digits, _ . -",
    CUSTOM_KEY: "a custom attribute name: letters, digits, _ - and '.' between parts",
    DIRECTIVE_VALUE: "a scheduler option value: no blanks, quotes, '#', '$', ';' or backslashes",
}

_COMPILED = {p: re.compile(p) for p in DESCRIPTIONS}


def matches(pattern: str, value: str) -> bool:
    rx = _COMPILED.get(pattern) or re.compile(pattern)
    return rx.search(value) is not None


# -- custom attributes ------------------------------------------------------------------------
# What a custom attribute may never set, whatever a site's profile lets through: the broker
# owns the account (the project's mapping), the tag (comment/name, for duplicate detection),
# the output paths and working directory (the files API and stdout_path/stderr_path), and the
# environment and script themselves.  Keys are compared lower-cased, with any scheduler prefix
# ("slurm.", "pbs.") removed.
BROKER_OWNED: frozenset[str] = frozenset(
    {
        "account", "a", "account_name", "project", "allocation", "charge",  # who pays
        "comment", "tag", "name", "job-name", "job_name", "jobname", "j", "n",  # the tag
        "output", "error", "input", "o", "e", "i", "k", "join", "keep",  # files
        "stdout", "stderr", "stdin", "output_path", "error_path", "stdout_path", "stderr_path",
        "standardoutput", "standarderror", "standardinput",
        "chdir", "d", "workdir", "directory", "working_directory", "workingdirectory",
        "export", "export-file", "v", "environment", "env",  # the environment
        "wrap", "script", "uid", "gid", "user", "group", "get-user-env",  # the script, identity
        "clusters", "cluster",  # another cluster: another site, another account
    }
)  # fmt: skip
# sbatch options the renderer derives from the spec's own fields: set those fields instead
# (placement reads them; a second --nodes in the script would bypass its limits).
SPEC_DERIVED: dict[str, str] = {
    "nodes": "resources.node_count",
    "ntasks": "resources.process_count",
    "ntasks-per-node": "resources.processes_per_node",
    "cpus-per-task": "resources.cpu_cores_per_process",
    "gpus-per-task": "resources.gpu_cores_per_process",
    "mem": "resources.memory",
    "time": "attributes.duration",
    "partition": "attributes.queue_name",
    "qos": "attributes.queue_name",
    "reservation": "attributes.reservation_id",
}
# Broker flags read by the translation itself, never sent as scheduler options.
BROKER_FLAGS: frozenset[str] = frozenset({"queue_is_qos"})
SLURM_PREFIX = "slurm."

# sbatch's long options (sbatch(1), Slurm 24.05) that a ``slurm.<option>`` custom attribute
# may name.  Exact names only: getopt_long also takes unambiguous prefixes ("--acc" is
# --account), so a deny list of full names alone would not hold.  Options that take no value.
SBATCH_FLAGS: frozenset[str] = frozenset(
    {"contiguous", "exclusive", "no-requeue", "overcommit", "oversubscribe", "requeue", "spread-job",
     "use-min-nodes"}
)  # fmt: skip
SBATCH_OPTIONS: frozenset[str] = SBATCH_FLAGS | frozenset(
    {
        "acctg-freq", "array", "batch", "bb", "bbf", "begin", "cluster-constraint", "constraint",
        "container", "core-spec", "cores-per-socket", "cpu-freq", "cpus-per-gpu", "cpus-per-task",
        "deadline", "delay-boot", "dependency", "distribution", "exclude", "extra-node-info",
        "gpu-bind", "gpu-freq", "gpus", "gpus-per-node", "gpus-per-socket", "gpus-per-task", "gres",
        "gres-flags", "hint", "licenses", "mail-type", "mail-user", "mcs-label", "mem", "mem-bind",
        "mem-per-cpu", "mem-per-gpu", "mincpus", "network", "nice", "nodefile", "nodelist", "nodes",
        "ntasks", "ntasks-per-core", "ntasks-per-gpu", "ntasks-per-node", "ntasks-per-socket",
        "open-mode", "partition", "power", "prefer", "priority", "profile", "propagate", "qos",
        "reboot", "reservation", "signal", "sockets-per-node", "switches", "thread-spec",
        "threads-per-core", "time", "time-min", "tmp", "tres-per-task", "wckey",
    }
)  # fmt: skip


def _base(key: str) -> str:
    low = key.lower()
    for prefix in (SLURM_PREFIX, "pbs."):
        if low.startswith(prefix):
            return low[len(prefix) :]
    return low


def custom_attribute_problem(key: str, value: str) -> str | None:
    """Why a custom attribute may not be passed on (None: it may, as far as the broker's own
    rules go; a site profile may still not allow it)."""
    if not matches(CUSTOM_KEY, key) or len(key) > MAX_CUSTOM_KEY:
        return f"the name {key[:80]!r} is not {DESCRIPTIONS[CUSTOM_KEY]} (at most {MAX_CUSTOM_KEY} characters)"
    if not matches(TEXT, value):
        return DESCRIPTIONS[TEXT]
    if len(value) > MAX_CUSTOM_VALUE:
        return f"at most {MAX_CUSTOM_VALUE} characters"
    base = _base(key)
    if base in BROKER_OWNED or base.replace("_", "-") in BROKER_OWNED:
        return (
            "set by the broker (account, tag, job name, output paths, working directory, environment); "
            "not a custom attribute"
        )
    if key.lower().startswith(SLURM_PREFIX):
        option = key[len(SLURM_PREFIX) :]
        if option not in SBATCH_OPTIONS:
            return f"--{option} is not an sbatch option a job may set (use its full long name)"
        if option in SPEC_DERIVED:
            return f"--{option} comes from the spec's {SPEC_DERIVED[option]}; set that instead"
        if option in SBATCH_FLAGS and value not in ("", "true", "1"):
            return f"--{option} takes no value (give '' or 'true')"
        if not matches(DIRECTIVE_VALUE, value):
            return DESCRIPTIONS[DIRECTIVE_VALUE]
    return None


# -- the whole spec ---------------------------------------------------------------------------
def _text_problem(value: str, limit: int, pattern: str = TEXT) -> str | None:
    if len(value) > limit:
        return f"at most {limit} characters"
    if not matches(pattern, value):
        return f"must be {DESCRIPTIONS[pattern]}"
    return None


def spec_problems(spec: JobSpec, prefix: str = "spec") -> Iterator[tuple[str, str]]:
    """Every reason this spec may not reach a script, as (field, message); field paths are
    the API's (``spec.environment.A=1; touch x``, ``spec.arguments[2]``)."""
    yield from _constrained_problems(spec, prefix)
    yield from unconstrained_problems(spec, prefix)


def _constrained_problems(spec: JobSpec, prefix: str) -> Iterator[tuple[str, str]]:
    """What the JobSpec's msgspec constraints say too (each string's length and pattern, the
    counts): checked again here for a spec built in code, which skips them."""
    a = spec.attributes
    checks: list[tuple[str, str | None, int, str]] = [
        ("executable", spec.executable, MAX_PATH, TEXT),
        ("name", spec.name, MAX_NAME, TEXT),
        ("directory", spec.directory, MAX_PATH, PATH),
        ("stdout_path", spec.stdout_path, MAX_PATH, PATH),
        ("stderr_path", spec.stderr_path, MAX_PATH, PATH),
        ("attributes.queue_name", a.queue_name, MAX_QUEUE, QUEUE),
        ("attributes.reservation_id", a.reservation_id, MAX_RESERVATION, RESERVATION),
        ("attributes.account", a.account, MAX_ACCOUNT, ACCOUNT),
    ]
    for field, value, limit, pattern in checks:
        if value is not None and (msg := _text_problem(value, limit, pattern)):
            yield f"{prefix}.{field}", msg
    if not spec.executable:
        yield f"{prefix}.executable", "must not be empty"
    if len(spec.arguments) > MAX_ARGUMENTS:
        yield f"{prefix}.arguments", f"at most {MAX_ARGUMENTS} arguments"
    for i, arg in enumerate(spec.arguments[:MAX_ARGUMENTS]):
        if msg := _text_problem(arg, MAX_ARGUMENT):
            yield f"{prefix}.arguments[{i}]", msg
    if len(spec.environment) > MAX_ENV:
        yield f"{prefix}.environment", f"at most {MAX_ENV} variables"
    for key, value in spec.environment.items():
        field = f"{prefix}.environment.{_shown(key)}"
        if len(key) > MAX_ENV_NAME or not matches(ENV_NAME, key):
            yield field, f"the name must be {DESCRIPTIONS[ENV_NAME]} (at most {MAX_ENV_NAME} characters)"
        elif msg := _text_problem(value, MAX_ENV_VALUE):
            yield field, msg
    if len(a.custom_attributes) > MAX_CUSTOM:
        yield f"{prefix}.attributes.custom_attributes", f"at most {MAX_CUSTOM} attributes"


def unconstrained_problems(spec: JobSpec, prefix: str = "spec") -> Iterator[tuple[str, str]]:
    """What no msgspec constraint can say: the custom attributes the broker owns or that are
    no sbatch option, and the spec's total size. Enough for a spec msgspec decoded (intake
    runs only this: the rest was checked, in C, as the body was decoded)."""
    a = spec.attributes
    for key, value in a.custom_attributes.items():
        if msg := custom_attribute_problem(key, value):
            yield f"{prefix}.attributes.custom_attributes.{_shown(key)}", msg
    total = sum(
        len(s)
        for s in (spec.executable, spec.name or "", spec.directory or "", spec.stdout_path or "",
                  spec.stderr_path or "", *spec.arguments, *spec.environment, *spec.environment.values(),
                  *a.custom_attributes, *a.custom_attributes.values())
    )  # fmt: skip
    if total > MAX_SPEC_TEXT:
        yield prefix, f"its strings add up to {total} characters; at most {MAX_SPEC_TEXT}"


def _shown(key: str) -> str:
    """A user's key as it may appear in an error: control characters escaped, cut short."""
    return repr(key[:80])[1:-1] if not matches(TEXT, key) else key[:80]


class UnsafeJob(SiteRejected):
    """A job that may not be rendered; ``field`` is the spec field at fault.  A refusal
    before anything is sent: permanent, like the facility's own."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def charged_account(spec: JobSpec, account: str | None) -> str | None:
    """The account a job is charged to: the broker's (``account``, the site's mapping of the
    job's project), never the spec's.  A spec naming another account is refused, not ignored."""
    if account is not None:
        ensure_matches("account", account, ACCOUNT)
    wanted = spec.attributes.account
    if wanted and wanted != account:
        raise UnsafeJob(
            "spec.attributes.account",
            f"{wanted[:80]!r} is not the account this project is charged to here ({account or 'none'})",
        )
    return account


def ensure_safe(spec: JobSpec) -> None:
    """Raise ``UnsafeJob`` for the first problem ``spec_problems`` finds."""
    for field, message in spec_problems(spec):
        raise UnsafeJob(field, message)


def ensure_matches(field: str, value: str, pattern: str) -> str:
    """``value`` when it matches ``pattern`` whole, else ``UnsafeJob``: the last check before
    a value is written into a directive."""
    if not matches(pattern, value):
        raise UnsafeJob(field, f"{value[:80]!r} must be {DESCRIPTIONS.get(pattern, 'well-formed')}")
    return value
