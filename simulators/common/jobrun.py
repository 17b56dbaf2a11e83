"""Running a batch job's script when the scheduler says it ends: the shell, the job's
standard streams opened where the job asked, and the scheduler's variables (Slurm's or PBS's).

Jobs run lazily: the BatchSystem calls ``run`` when a job's end time is reached (or when it is
cancelled or times out, with the time it had), so submitting stays as cheap as before."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from simulators.common.files import VirtualFS
from simulators.common.scheduler import SimJob
from simulators.common.shell import IO, Handler, Killed, Launch, Shell, Sink

log = logging.getLogger("superfed.sim.shell")


@dataclass
class JobRun:
    """What one job needs to run (the facility fills it in from its own conventions)."""

    script: str
    user: str
    uid: int
    home: str
    cwd: str
    host: str
    env: dict[str, str]
    launch: Launch
    stdout: str  # absolute paths in the VirtualFS
    stderr: str
    args: tuple[str, ...] = ()
    name: str = "bash"  # $0 and the prefix of bash's messages
    extra: dict[str, Handler] = field(default_factory=dict)  # facility commands for this job


def run(fs: VirtualFS, spec: JobRun, budget: float | None) -> tuple[int | None, Shell]:
    """(exit code, the shell); the code is None when the script was killed for running past
    ``budget`` seconds. A stream whose file cannot be opened is lost, as with Slurm."""
    sh = Shell(
        fs=fs,
        user=spec.user,
        uid=spec.uid,
        home=spec.home,
        host=spec.host,
        env=dict(spec.env),
        cwd=spec.cwd if fs.exists(spec.cwd) else spec.home,
        args=list(spec.args),
        name=spec.name,
        launch=spec.launch,
        budget=budget,
        extra=dict(spec.extra),
    )
    out = _open(sh, spec.stdout)
    err = out if spec.stderr == spec.stdout else _open(sh, spec.stderr)
    io = IO(out, err)
    try:
        return sh.run_script(spec.script, io), sh
    except Killed as exc:
        if str(exc) == "time limit":
            return None, sh
        err.write(f"{spec.name}: simulated shell stopped: {exc}\n")
        return 1, sh
    except Exception as exc:  # a bug in the shell must not stop the facility's clock
        log.exception("simulated shell failed on job script")
        err.write(f"{spec.name}: simulated shell error: {type(exc).__name__}\n")
        return 1, sh


def _open(sh: Shell, path: str) -> Sink:
    try:
        sh.fs.write(path, b"")
    except OSError:
        return Sink(sh)  # nowhere to write: the stream is dropped
    return Sink(sh, path)


def expand_pattern(pattern: str, job: SimJob, workdir: str, *, array_task: str = "4294967294") -> str:
    """Slurm's ``--output`` filename pattern (%j %x %u %N %A %a %%), relative to the workdir."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "%" and i + 1 < len(pattern):
            key = pattern[i + 1]
            out.append(
                {
                    "j": job.id,
                    "x": job.name,
                    "u": job.user,
                    "N": "nid001000",
                    "A": job.id,
                    "a": array_task,
                    "%": "%",
                }.get(key, c + key)
            )
            i += 2
            continue
        out.append(c)
        i += 1
    path = "".join(out)
    return path if path.startswith("/") else f"{workdir.rstrip('/')}/{path}"


def node_names(job: SimJob, first: int, prefix: str = "nid", width: int = 6) -> list[str]:
    """The job's nodes, numbered from ``first`` (each facility picks them its own way)."""
    return [f"{prefix}{first + k:0{width}d}" for k in range(job.nodes)]


def hostlist(names: list[str], prefix: str = "nid") -> str:
    """Slurm's compressed form: ``nid[001000-001003]``."""
    if len(names) == 1:
        return names[0]
    return f"{prefix}[{names[0][len(prefix) :]}-{names[-1][len(prefix) :]}]"


def slurm_environment(
    job: SimJob, *, cluster: str, submit_dir: str, ntasks: int, names: list[str], qos: str | None = None
) -> dict[str, str]:
    """The variables Slurm sets in a batch job's environment."""
    env = {
        "SLURM_JOB_ID": job.id,
        "SLURM_JOBID": job.id,
        "SLURM_JOB_NAME": job.name,
        "SLURM_JOB_USER": job.user,
        "SLURM_JOB_ACCOUNT": job.account or "",
        "SLURM_JOB_PARTITION": job.partition,
        "SLURM_CLUSTER_NAME": cluster,
        "SLURM_SUBMIT_DIR": submit_dir,
        "SLURM_SUBMIT_HOST": f"{cluster}-login01",
        "SLURM_NNODES": str(job.nodes),
        "SLURM_JOB_NUM_NODES": str(job.nodes),
        "SLURM_NTASKS": str(ntasks),
        "SLURM_NPROCS": str(ntasks),
        "SLURM_TASKS_PER_NODE": str(max(1, ntasks // job.nodes)) + (f"(x{job.nodes})" if job.nodes > 1 else ""),
        "SLURM_JOB_NODELIST": hostlist(names),
        "SLURM_NODELIST": hostlist(names),
        "SLURMD_NODENAME": names[0],
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_TOPOLOGY_ADDR": names[0],
        "SLURM_GTIDS": "0",
        "ENVIRONMENT": "BATCH",
    }
    if qos:
        env["SLURM_JOB_QOS"] = qos
    return env


def pbs_environment(job: SimJob, *, server: str, jobid: str, workdir: str, nodefile: str, home: str) -> dict[str, str]:
    """The variables PBS Pro sets in a batch job's environment."""
    return {
        "PBS_JOBID": jobid,
        "PBS_JOBNAME": job.name,
        "PBS_QUEUE": job.partition,
        "PBS_ACCOUNT": job.account or "",
        "PBS_O_WORKDIR": workdir,
        "PBS_O_HOME": home,
        "PBS_O_LOGNAME": job.user,
        "PBS_O_HOST": f"{server}-login-01",
        "PBS_O_SHELL": "/bin/bash",
        "PBS_O_QUEUE": job.partition,
        "PBS_NODEFILE": nodefile,
        "PBS_ENVIRONMENT": "PBS_BATCH",
        "PBS_JOBDIR": home,
        "PBS_NODENUM": "0",
        "PBS_TASKNUM": "1",
        "NCPUS": "64",
    }
