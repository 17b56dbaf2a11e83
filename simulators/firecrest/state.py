"""The simulated CSCS site: Alps-like systems, their health as FirecREST v2 reports it, and
jobs in the v2 wire shape (``JobModel``)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

from simulators.common import jobrun
from simulators.common.facility import Facility, SimSettings
from simulators.common.scheduler import CANCELLED, FINAL, PENDING, TIMEOUT, Partition, SimJob
from simulators.common.shell import IO, Killed, Launch, Shell, Sink
from simulators.firecrest.staging import StagingArea, stage_command

SLOW_CHECK_S = 7.5  # latency a degraded service reports (the check still succeeds, slowly)
OPS_MAX_FILE_SIZE = 5 * 1024 * 1024  # dataOperation.maxOpsFileSize, FirecREST's default
FILESYSTEMS = (("/home", "users", True), ("/scratch", "scratch", False))
TASKS_PER_NODE = 288  # Alps GH200 nodes: 4 x 72 cores


def default_partitions(nodes: int) -> list[Partition]:
    return [
        Partition("normal", max_nodes=nodes, max_walltime_s=24 * 3600, default_walltime_s=3600),
        Partition(
            "debug", max_nodes=min(2, nodes), max_walltime_s=30 * 60, default_walltime_s=30 * 60
        ),
    ]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class FirecrestFacility(Facility):
    """A Facility that seeds home and scratch, and writes each job's output file when it ends."""

    def __init__(self, settings: SimSettings):
        if not settings.partitions:
            settings = dataclasses.replace(settings, partitions=default_partitions(settings.nodes))
        super().__init__("firecrest", settings)

    def reset(self) -> None:
        super().reset()
        self.staging = StagingArea()
        self.reservations: dict[str, dict[str, Any]] = {}  # name -> the /status reservations entry
        user = self.settings.user
        for root in ("/home", "/scratch"):
            self.fs.mkdir(f"{root}/{user}", parents=True)
        self.fs.write(f"/home/{user}/.bashrc", b"# simulated\n")
        for sysm in self.systems.values():
            sysm.runner = self._run_job  # lazily, when the job ends
            sysm.on_finish = self._kill_note

    def _run_job(self, job: SimJob, budget: float | None) -> int | None:
        """The job's script, run by the shell when the job ends: its output is what it printed."""
        code, _ = jobrun.run(self.fs, self.job_run(job), budget)
        return code

    def job_run(self, job: SimJob) -> jobrun.JobRun:
        workdir = job.workdir or f"/home/{job.user}"
        names = jobrun.node_names(job, int(job.id) % 1000)  # as _node_list shows them
        ntasks = job.extra.get("ntasks") or job.nodes * (job.extra.get("ntasks_per_node") or 1)
        meta = job_metadata(job)
        env = {
            **job.environment,
            **jobrun.slurm_environment(job, cluster=job.system, submit_dir=workdir, ntasks=ntasks, names=names),
        }
        return jobrun.JobRun(
            script=job.script,
            user=job.user,
            uid=self.settings.uid,
            home=f"/home/{job.user}",
            cwd=workdir,
            host=names[0],
            env=env,
            launch=Launch(nodes=job.nodes, ntasks=ntasks, node_names=names, max_tasks_per_node=TASKS_PER_NODE),
            stdout=meta["standardOutput"],
            stderr=meta["standardError"],
            name=f"/var/spool/slurmd/job{job.id}/slurm_script",
            extra={"f7t-stage": stage_command(self.staging)} if job.extra.get("transfer") else {},
        )

    def attach(self, job: SimJob, command: str) -> int:
        """``srun --overlap --jobid=N bash -c COMMAND`` in a running job: the command runs
        now in the job's environment; its output goes where the command sends it (the
        attach answer carries none, as in FirecREST)."""
        spec = self.job_run(job)
        sh = Shell(
            fs=self.fs,
            user=spec.user,
            uid=spec.uid,
            home=spec.home,
            host=spec.host,
            env=dict(spec.env),
            cwd=spec.cwd if self.fs.exists(spec.cwd) else spec.home,
            launch=spec.launch,
        )
        try:
            return sh.run_script(command, IO(Sink(sh, discard=True), Sink(sh, discard=True)))
        except Killed:
            return 1

    def _kill_note(self, job: SimJob) -> None:
        """slurmstepd's line in the error file when Slurm kills a running job."""
        if job.start_time is None or job.state not in (CANCELLED, TIMEOUT):
            return
        why = " DUE TO TIME LIMIT" if job.state == TIMEOUT else ""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(job.end_time or self.clock()))
        host = jobrun.node_names(job, int(job.id) % 1000)[0]
        line = f"slurmstepd: error: *** JOB {job.id} ON {host} CANCELLED AT {stamp}{why} ***\n"
        with contextlib.suppress(OSError):  # no such directory: Slurm would drop it too
            self.fs.write(job_metadata(job)["standardError"], line.encode(), append=True)

    # -- health ---------------------------------------------------------------------------
    def services_health(self) -> list[dict[str, Any]]:
        now = iso(self.clock())

        def entry(service: str, states: tuple[str, ...], **extra: Any) -> dict[str, Any]:
            state = "down" if "down" in states else "degraded" if "degraded" in states else "up"
            notes = [
                self.component_notes[c]
                for c in ("compute", "scheduler", "login", "filesystem")
                if c in self.component_notes and self.components.get(c) != "up"
            ]
            message = None
            if state == "down":
                message = notes[0] if notes else f"{service} check failed"
            elif state == "degraded":
                message = notes[0] if notes else f"{service} responding slowly"
            return {
                "serviceType": service,
                "lastChecked": now,
                "latency": SLOW_CHECK_S if state == "degraded" else 0.05,
                "healthy": state != "down",
                "message": message,
                **extra,
            }

        c = self.components
        out = [entry("scheduler", (c.get("compute", "up"), c.get("scheduler", "up")))]
        out.append(entry("ssh", (c.get("login", "up"),)))
        out += [
            entry("filesystem", (c.get("filesystem", "up"),), path=p) for p, _, _ in FILESYSTEMS
        ]
        return out

    def scheduler_healthy(self) -> bool:
        return not (self.is_down("compute") or self.is_down("scheduler"))

    def filesystem_healthy(self) -> bool:
        return not self.is_down("filesystem")

    def system_info(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "ssh": {
                "host": f"{name}.cscs.ch",
                "port": 22,
                "proxyHost": None,
                "proxyPort": None,
                "maxClients": 100,
                "timeout": {
                    "connection": 5,
                    "login": 5,
                    "commandExecution": 5,
                    "idleTimeout": 60,
                    "keepAlive": 5,
                },
            },
            "scheduler": {
                "type": "slurm",
                "version": "24.05.4",
                "apiUrl": None,
                "apiVersion": None,
                "connectionMode": "ssh",
                "timeout": 10,
            },
            "servicesHealth": self.services_health(),
            "probing": {
                "intervalCheck": 120,
                "services": {
                    "scheduler": {"timeout": 10},
                    "ssh": {"timeout": 10},
                    "filesystem": {"timeout": 10},
                },
            },
            "fileSystems": [
                {"path": p, "dataType": t, "defaultWorkDir": d} for p, t, d in FILESYSTEMS
            ],
            "dataOperation": {
                "maxOpsFileSize": OPS_MAX_FILE_SIZE,
                "datatransferJobsDirectives": ["#SBATCH --nodes=1", "#SBATCH --time=0-00:15:00"],
                "dataTransfer": None,
            },
            "lastHealthCheck": iso(self.clock()),
        }


def output_path(job: SimJob) -> str:
    workdir = job.workdir or f"/home/{job.user}"
    out = job.stdout_path or "slurm-%j.out"
    out = out.replace("%j", job.id).replace("%x", job.name).replace("%u", job.user)
    return out if out.startswith("/") else f"{workdir.rstrip('/')}/{out}"


def _node_list(job: SimJob) -> str:
    if job.start_time is None:
        return "None assigned"
    first = int(job.id) % 1000
    return f"nid{first:06d}" if job.nodes == 1 else f"nid[{first:06d}-{first + job.nodes - 1:06d}]"


def _state_word(job: SimJob) -> str:
    # sacct reports who cancelled: "CANCELLED by <uid>"
    if job.state == CANCELLED and job.cancelled_by:
        return f"CANCELLED by {job.cancelled_by}"
    return job.state


def _times(job: SimJob, now: float) -> dict[str, Any]:
    start = job.start_time
    end = job.end_time
    elapsed = 0 if start is None else int((end if end is not None else now) - start)
    return {
        "elapsed": max(0, elapsed),
        "start": int(start) if start is not None else None,
        "end": int(end) if end is not None else None,
        "suspended": 0,
        "limit": job.walltime_s,
    }


def job_wire(job: SimJob, group: str, now: float | None = None) -> dict[str, Any]:
    """A job as ``GET /compute/{system}/jobs`` shows it. A finished job never changes, so its
    dict is built once and kept (the status over 1,000 jobs stays cheap)."""
    cached = job.extra.get("fc_wire")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    now = time.time() if now is None else now
    signal = 15 if job.state == CANCELLED and job.start_time is not None else 0
    status = {
        "state": _state_word(job),
        "stateReason": job.reason,
        "exitCode": job.exit_code if job.exit_code is not None else 0,
        "interruptSignal": signal,
    }
    times = _times(job, now)
    tasks = []
    if job.start_time is not None:
        tasks.append(
            {
                "id": f"{job.id}.batch",
                "name": "batch",
                "status": dict(status, stateReason=None),
                "time": times,
            }
        )
    wire = {
        "jobId": job.id,
        "name": job.name,
        "account": job.account,
        "user": job.user,
        "group": group,
        "cluster": job.system,
        "partition": job.partition,
        "nodes": _node_list(job),
        "allocationNodes": job.nodes,
        "priority": 0 if job.state in FINAL else 4294901760 - int(job.id) % 65536,
        "killRequestUser": job.cancelled_by if job.state == CANCELLED else None,
        "workingDirectory": job.workdir or f"/home/{job.user}",
        "status": status,
        "time": times,
        "tasks": tasks,
    }
    if job.state in FINAL:
        job.extra["fc_wire"] = wire
    return wire


def job_metadata(job: SimJob) -> dict[str, Any]:
    out = output_path(job)
    err = job.stderr_path
    if err:
        err = err.replace("%j", job.id).replace("%x", job.name).replace("%u", job.user)
        if not err.startswith("/"):
            err = f"{(job.workdir or '/home/' + job.user).rstrip('/')}/{err}"
    return {
        "jobId": job.id,
        "script": job.script,
        "standardInput": job.extra.get("stdin") or "/dev/null",
        "standardOutput": out,
        "standardError": err or out,
    }


def is_pending(job: SimJob) -> bool:
    return job.state == PENDING
