"""What runs on NERSC in the SF API simulator: ``POST /utilities/command`` lines on a login
node, and batch jobs' scripts on compute nodes, both with the common shell
(``simulators.common.shell``), plus the Slurm client commands a login node has
(``squeue``, ``sacct``) reading the simulated scheduler."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from simulators.common.jobrun import (
    JobRun,
    expand_pattern,
    node_names,
    slurm_environment,
)
from simulators.common.jobrun import run as run_job
from simulators.common.scheduler import SimJob
from simulators.common.shell import IO, Exit, Killed, Launch, Shell, Sink
from simulators.sfapi.rows import exit_code, native_state, nodelist
from simulators.sfapi.sbatch import format_squeue_time

if TYPE_CHECKING:
    from simulators.sfapi.state import SfapiFacility

MAX_ARG_STRLEN = 131072  # Linux's limit on one argument, e.g. the command line of `bash -c`
COMPUTE_HOST = "nid001000"
TASKS_PER_NODE = 128  # Perlmutter CPU nodes: 128 cores


def run_command(f: SfapiFacility, line: str, *, host: str) -> tuple[dict[str, object], float]:
    """(task result, seconds it runs) for one ``executable`` line, run as ``bash -c``."""
    s = f.settings
    sh = Shell(
        fs=f.fs,
        user=s.user,
        uid=s.uid,
        home=f.home,
        host=host,
        env={"SCRATCH": f.scratch, "NERSC_HOST": "perlmutter"},
        extra={"squeue": lambda sh, a, io: squeue(f, a, io), "sacct": lambda sh, a, io: sacct(f, a, io)},
    )
    out, err = Sink(sh), Sink(sh)
    if len(line) > MAX_ARG_STRLEN:
        err.write("bash: Argument list too long\n")
        code = 126
    else:
        try:
            code = sh.run_script(line, IO(out, err)) if line.strip() else 0
        except Killed as exc:
            err.write(f"bash: simulated shell stopped: {exc}\n")
            code = 1
        except Exit as exc:
            code = exc.code
    result: dict[str, object] = {
        "status": "ok" if code == 0 else "error",
        "output": out.text(),
        "error": err.text(),
        "exit_code": code,
    }
    return result, sh.slept


def job_run(f: SfapiFacility, job: SimJob) -> JobRun:
    """A Perlmutter batch job: Slurm's variables, ``slurm-%j.out`` (stderr with it unless
    ``--error`` says otherwise), ``srun`` as wide as ``--ntasks``."""
    extra = job.extra
    workdir = job.workdir or f.home
    ntasks = _ntasks(job)
    names = node_names(job, 1000 + int(job.id) % 3000)  # as rows.nodelist shows them
    env = {
        "SCRATCH": f.scratch,
        "NERSC_HOST": "perlmutter",
        **job.environment,
        **slurm_environment(
            job,
            cluster=job.system,
            submit_dir=workdir,
            ntasks=ntasks,
            names=names,
            qos=extra.get("qos") or job.partition,
        ),
    }
    stdout = expand_pattern(job.stdout_path or "slurm-%j.out", job, workdir)
    stderr = expand_pattern(job.stderr_path, job, workdir) if job.stderr_path else stdout
    return JobRun(
        script=job.script,
        user=job.user,
        uid=f.settings.uid,
        home=f.home,
        cwd=workdir,
        host=names[0],
        env=env,
        launch=Launch(nodes=job.nodes, ntasks=ntasks, node_names=names, max_tasks_per_node=TASKS_PER_NODE),
        stdout=stdout,
        stderr=stderr,
        args=tuple(extra.get("args", ())),
        name=f"/var/spool/slurmd/job{job.id}/slurm_script",
    )


def _ntasks(job: SimJob) -> int:
    for key, scale in (("ntasks", 1), ("ntasks-per-node", job.nodes)):
        raw = str(job.extra.get(key) or "")
        if raw.isdigit() and int(raw) > 0:
            return int(raw) * scale
    return job.nodes


def run_batch_job(f: SfapiFacility, job: SimJob, budget: float | None) -> int | None:
    """The BatchSystem's runner: the script's exit code, None if it ran out of time."""
    return run_job(f.fs, job_run(f, job), budget)[0]


def stepd_note(f: SfapiFacility, job: SimJob) -> None:
    """slurmstepd's line in the job's error file when Slurm kills it."""
    if job.start_time is None or job.state not in ("CANCELLED", "TIMEOUT"):
        return
    spec = job_run(f, job)
    why = " DUE TO TIME LIMIT" if job.state == "TIMEOUT" else ""
    stamp = _iso(job.end_time if job.end_time is not None else f.clock())
    line = f"slurmstepd: error: *** JOB {job.id} ON {spec.host} CANCELLED AT {stamp}{why} ***\n"
    with contextlib.suppress(OSError):  # the directory went away: Slurm loses the line too
        f.fs.write(spec.stderr, line.encode(), append=True)


def _iso(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))


# -- Slurm's client commands on a login node ------------------------------------------------
def _opts(args: list[str], with_value: set[str]) -> tuple[dict[str, str], set[str]]:
    opts: dict[str, str] = {}
    flags: set[str] = set()
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition("=")
        if name in with_value:
            if not eq:
                value = args[i + 1] if i + 1 < len(args) else ""
                i += 1
            opts[name] = value
        elif name.startswith("-") and len(name) > 2 and not name.startswith("--") and name[:2] in with_value:
            opts[name[:2]] = name[2:]
        else:
            flags.add(a)
        i += 1
    return opts, flags


def _filtered(f: SfapiFacility, opts: dict[str, str], flags: set[str], *, live: bool) -> list[SimJob]:
    jobs: list[SimJob] = []
    for sysm in f.systems.values():
        jobs.extend(sysm.all())
    ids = opts.get("-j") or opts.get("--jobs")
    users = opts.get("-u") or opts.get("--user") or (f.settings.user if "--me" in flags else None)
    names = opts.get("-n") or opts.get("--name")  # sacct's -n is --noheader: not in its options
    states = opts.get("-t") or opts.get("--states") or opts.get("-s") or opts.get("--state")
    parts = opts.get("-p") or opts.get("--partition")
    if ids:
        wanted = set(ids.split(","))
        jobs = [j for j in jobs if j.id in wanted]
    if users:
        jobs = [j for j in jobs if j.user in users.split(",")]
    if names:
        jobs = [j for j in jobs if j.name in names.split(",")]
    if parts:
        jobs = [j for j in jobs if j.partition in parts.split(",")]
    if states:
        want = {s.upper() for s in states.split(",")}
        short = {"PD": "PENDING", "R": "RUNNING", "CD": "COMPLETED", "F": "FAILED", "CA": "CANCELLED", "TO": "TIMEOUT"}
        want = {short.get(s, s) for s in want}
        jobs = [j for j in jobs if j.state in want]
    if live:
        jobs = [j for j in jobs if j.state in ("PENDING", "RUNNING")]
    return jobs


_STATE_LETTERS = {"PENDING": "PD", "RUNNING": "R", "COMPLETED": "CD", "FAILED": "F", "CANCELLED": "CA", "TIMEOUT": "TO"}


def squeue(f: SfapiFacility, args: list[str], io: IO) -> int:
    """``squeue``: the controller's pending and running jobs, in squeue's default columns."""
    if f.is_down("scheduler") or f.is_down("compute"):
        io.err.write("slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n")
        return 1
    opts, flags = _opts(
        args,
        {
            "-u",
            "--user",
            "-j",
            "--jobs",
            "-n",
            "--name",
            "-t",
            "--states",
            "-p",
            "--partition",
            "-o",
            "--format",
            "-M",
            "--clusters",
        },
    )
    now = f.clock()
    if not ({"-h", "--noheader"} & flags):
        head = f"{'JOBID':>18} {'PARTITION':>9} {'NAME':>8} {'USER':>8} {'ST':>2} {'TIME':>10} {'NODES':>6}"
        io.out.write(head + " NODELIST(REASON)\n")
    for j in _filtered(f, opts, flags, live=True):
        ran = format_squeue_time(now - j.start_time) if j.start_time else "0:00"
        where = nodelist(j) if j.state == "RUNNING" else f"({j.reason})"
        io.out.write(
            f"{j.id:>18} {j.partition[:9]:>9} {j.name[:8]:>8} {j.user[:8]:>8} {_STATE_LETTERS[j.state]:>2} "
            f"{ran:>10} {j.nodes:>6} {where}\n"
        )
    return 0


def sacct(f: SfapiFacility, args: list[str], io: IO) -> int:
    """``sacct``: the accounting records (finished jobs too), in sacct's default columns, or
    ``-P``/``--parsable2`` with ``|`` between fields."""
    opts, flags = _opts(
        args,
        {
            "-u",
            "--user",
            "-j",
            "--jobs",
            "--name",
            "-s",
            "--state",
            "-o",
            "--format",
            "-S",
            "--starttime",
            "-E",
            "--endtime",
            "-M",
            "--clusters",
        },
    )
    if "-u" not in opts and "--user" not in opts and not ({"-a", "--allusers"} & flags):
        opts["-u"] = f.settings.user  # sacct shows the caller's jobs unless asked otherwise
    columns = ("JobID", "JobName", "Partition", "Account", "AllocCPUS", "State", "ExitCode")
    parsable = bool({"-P", "--parsable2", "-p", "--parsable"} & flags)
    rows = []
    for j in _filtered(f, opts, flags, live=False):
        rows.append(
            (
                j.id,
                j.name,
                j.partition,
                j.account or "",
                str(j.nodes * TASKS_PER_NODE * 2 if j.start_time else 0),
                native_state(j),
                exit_code(j),
            )
        )
    header = not ({"-n", "--noheader"} & flags)
    if parsable:
        if header:
            io.out.write("|".join(columns) + "\n")
        for r in rows:
            io.out.write("|".join(r) + "\n")
        return 0
    widths = (12, 10, 10, 10, 10, 10, 8)
    if header:
        io.out.write(" ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)) + " \n")
        io.out.write(" ".join("-" * w for w in widths) + " \n")
    for r in rows:
        cells = [f"{v[:w]:<{w}}" if k == 0 else f"{v[:w]:>{w}}" for k, (v, w) in enumerate(zip(r, widths, strict=True))]
        io.out.write(" ".join(cells) + " \n")
    return 0
