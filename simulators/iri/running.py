"""A PBS job at the simulated ALCF, run when it ends: the PSI/J spec as the command line
PBS's job shell would run (pre_launch; launcher executable arguments; post_launch), with
PBS's variables, ``$PBS_NODEFILE`` written, and the streams where the spec put them
(PBS's ``<name>.o<seq>``/``.e<seq>`` in the work directory otherwise)."""

from __future__ import annotations

import posixpath
import shlex
from typing import Any

from simulators.common import jobrun
from simulators.common.files import VirtualFS
from simulators.common.scheduler import SimJob
from simulators.common.shell import Launch

TASKS_PER_NODE = 64  # Polaris: 32 cores x 2 hardware threads


def script_of(spec: dict[str, Any]) -> str:
    """The job's commands, each argument quoted as given."""
    words = [spec.get("executable") or "", *(spec.get("arguments") or [])]
    launcher = spec.get("launcher")
    nodes = (spec.get("resources") or {}).get("node_count")
    procs = (spec.get("resources") or {}).get("process_count")
    if launcher in ("mpi", "mpiexec", "srun") or (launcher and launcher != "single"):
        n = procs or nodes
        words = ["mpiexec", *(["-n", str(n)] if n else []), *words]
    lines = [spec.get("pre_launch") or "", shlex.join(w for w in words if w), spec.get("post_launch") or ""]
    return "\n".join(line for line in lines if line) + "\n"


def job_run(fs: VirtualFS, job: SimJob, *, home: str, uid: int, jobid: str, server: str) -> jobrun.JobRun:
    spec = job.extra.get("spec") or {}
    workdir = job.workdir or home
    seq = job.id
    names = [f"x3{int(seq) % 1000:03d}c0s{k}b0n0" for k in range(job.nodes)]
    nodefile = f"/var/spool/pbs/aux/{jobid}"
    fs.mkdir(posixpath.dirname(nodefile), parents=True, exist_ok=True)
    fs.write(nodefile, "".join(f"{n}.hsn.cm.{server}.alcf.anl.gov\n" for n in names).encode())
    stdout = _path(job.stdout_path, workdir) or posixpath.join(workdir, f"{job.name}.o{seq}")
    stderr = _path(job.stderr_path, workdir) or posixpath.join(workdir, f"{job.name}.e{seq}")
    env = {
        **(job.environment or {}),
        **jobrun.pbs_environment(job, server=server, jobid=jobid, workdir=workdir, nodefile=nodefile, home=home),
    }
    procs = (spec.get("resources") or {}).get("process_count")
    return jobrun.JobRun(
        script=script_of(spec) if spec else job.script,
        user=job.user,
        uid=uid,
        home=home,
        cwd=workdir,
        host=names[0],
        env=env,
        launch=Launch(
            nodes=job.nodes,
            ntasks=int(procs or job.nodes),
            node_names=names,
            max_tasks_per_node=TASKS_PER_NODE,
            rank_vars=("PMI_RANK", "PALS_RANKID"),
            scheduler="pbs",
        ),
        stdout=stdout,
        stderr=stderr,
        name=f"/var/spool/pbs/mom_priv/jobs/{seq}.{server}.SC",
    )


def _path(path: str | None, workdir: str) -> str | None:
    if not path:
        return None
    return path if path.startswith("/") else posixpath.join(workdir, path)
