"""A simulated batch system: nodes, partitions with limits, FIFO with first-fit backfill.

Time advances lazily: every read or write first calls ``advance()``, which replays what
happened since the last call (jobs ending, queued jobs starting) in time order.  No
background task is needed, and a test can drive the clock by hand.

A job's planned run time comes from its command: every ``sleep S`` adds S seconds (times
``time_scale``); the last ``exit N`` sets its exit code.  With a ``runner`` (the facility's
shell, ``simulators.common.jobrun``) the script itself runs when the job ends, and its exit
code decides COMPLETED or FAILED; a script that sleeps past its walltime times out.  States use Slurm's words; each
simulator translates them into its facility's vocabulary.
"""

from __future__ import annotations

import heapq
import itertools
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT = (
    "PENDING",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
)
FINAL = frozenset({COMPLETED, FAILED, CANCELLED, TIMEOUT})

_SLEEP = re.compile(r"(?<![\w-])sleep\s+(\d+(?:\.\d+)?)")
_EXIT = re.compile(r"(?<![\w-])exit\s+(\d+)")


class SubmitError(Exception):
    """The batch system refuses a job; ``str(exc)`` is the scheduler's own message."""


def planned_run(command: str) -> tuple[float, int]:
    """(seconds of sleep, exit code) for a job's command text."""
    seconds = sum(float(s) for s in _SLEEP.findall(command))
    exits = _EXIT.findall(command)
    return seconds, int(exits[-1]) % 256 if exits else 0


@dataclass
class Partition:
    name: str
    max_nodes: int
    max_walltime_s: int
    default_walltime_s: int = 3600


@dataclass
class SimJob:
    id: str
    system: str
    partition: str
    name: str
    user: str
    account: str | None
    script: str
    nodes: int
    walltime_s: int
    submit_time: float
    run_s: float
    planned_exit: int
    state: str = PENDING
    start_time: float | None = None
    end_time: float | None = None
    exit_code: int | None = None
    reason: str = "Priority"
    comment: str = ""
    cancelled_by: str | None = None
    workdir: str | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # protocol-specific (e.g. the IRI spec)

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def elapsed_s(self) -> float:
        if self.start_time is None:
            return 0.0
        end = self.end_time if self.end_time is not None else time.time()
        return max(0.0, end - self.start_time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "system": self.system,
            "partition": self.partition,
            "name": self.name,
            "user": self.user,
            "account": self.account,
            "state": self.state,
            "exit_code": self.exit_code,
            "nodes": self.nodes,
            "walltime_s": self.walltime_s,
            "comment": self.comment,
            "script": self.script,
            "submit_time": self.submit_time,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "cancelled_by": self.cancelled_by,
        }


@dataclass
class ProjectUsage:
    allocated_node_hours: float
    used_node_hours: float = 0.0


_ids = itertools.count(1_000_001)


class BatchSystem:
    """One machine (``system``): nodes, partitions, its jobs. Not thread safe: simulators
    run on one event loop."""

    def __init__(
        self,
        name: str,
        *,
        nodes: int = 64,
        partitions: Iterable[Partition] | None = None,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
        projects: dict[str, float] | None = None,
        on_finish: Callable[[SimJob], None] | None = None,
    ):
        self.name = name
        self.total_nodes = nodes
        self.free_nodes = nodes
        self.partitions = {p.name: p for p in (partitions or [Partition("regular", nodes, 86400)])}
        self.default_partition = next(iter(self.partitions))
        self.time_scale = time_scale
        self.clock = clock
        self.projects = {k: ProjectUsage(v) for k, v in (projects or {}).items()}
        self.on_finish = on_finish
        # runs a job's script at its end: (job, seconds of script time it had or None for
        # unbounded) -> exit code, or None when the script was still running at the budget
        self.runner: Callable[[SimJob, float | None], int | None] | None = None
        self.jobs: dict[str, SimJob] = {}
        self._queue: deque[SimJob] = deque()  # FIFO of PENDING jobs
        self._running: list[tuple[float, int, str]] = []  # heap of (end time, seq, job id)
        self._seq = itertools.count()
        self.accepting = True  # compute down: submissions refused by the routes
        self.starting = True  # compute down: nothing starts; running jobs carry on
        self._last = clock()

    # -- submission -----------------------------------------------------------------------
    def submit(
        self,
        *,
        name: str,
        user: str,
        script: str,
        nodes: int = 1,
        walltime_s: int | None = None,
        partition: str | None = None,
        account: str | None = None,
        command: str | None = None,
        run_seconds: float | None = None,
        **kw: Any,
    ) -> SimJob:
        """Queue a job or raise ``SubmitError`` with a Slurm-like message.

        ``command`` is the text scanned for ``sleep``/``exit`` (defaults to the script);
        ``run_seconds`` instead sets how long it runs in real seconds (a job that waits for
        something outside, ended early by ``wake``)."""
        self.advance()
        part_name = partition or self.default_partition
        part = self.partitions.get(part_name)
        if part is None:
            raise SubmitError(f"invalid partition specified: {part_name}")
        if nodes < 1:
            raise SubmitError("invalid node count specified")
        if nodes > min(part.max_nodes, self.total_nodes):
            raise SubmitError("Requested node configuration is not available")
        walltime = walltime_s if walltime_s is not None else part.default_walltime_s
        if walltime > part.max_walltime_s:
            raise SubmitError("Requested time limit is invalid (missing or exceeds some limit)")
        if account is not None and self.projects and account not in self.projects:
            raise SubmitError(f"Invalid account or account/partition combination specified: {account}")
        seconds, code = planned_run(command if command is not None else script)
        job = SimJob(
            id=str(next(_ids)),
            system=self.name,
            partition=part_name,
            name=name,
            user=user,
            account=account,
            script=script,
            nodes=nodes,
            walltime_s=walltime,
            submit_time=self.clock(),
            run_s=seconds * self.time_scale if run_seconds is None else run_seconds,
            planned_exit=code,
            **kw,
        )
        self.jobs[job.id] = job
        self._queue.append(job)
        self._schedule(job.submit_time)
        return job

    # -- queries --------------------------------------------------------------------------
    def get(self, job_id: str) -> SimJob | None:
        self.advance()
        return self.jobs.get(job_id)

    def all(self) -> list[SimJob]:
        self.advance()
        return list(self.jobs.values())

    def cancel(self, job_id: str, by: str = "0") -> SimJob | None:
        """Cancel a job; a final job is left as it is. Returns the job, or None if unknown."""
        self.advance()
        job = self.jobs.get(job_id)
        if job is None or job.final:
            return job
        now = self.clock()
        if job.state == PENDING:
            self._queue.remove(job)
        else:
            self.free_nodes += job.nodes
            self._running = [e for e in self._running if e[2] != job.id]
            heapq.heapify(self._running)
            self._run(job, self._script_seconds(now - (job.start_time or now)))
        self._finish(job, CANCELLED, now, exit_code=0)
        job.cancelled_by = by
        self._schedule(now)
        return job

    def wake(self, job_id: str) -> None:
        """A job waiting on something outside the cluster (a staged upload) may end now: a
        running job ends at once, a pending one as soon as it starts."""
        self.advance()
        job = self.jobs.get(job_id)
        if job is None or job.final:
            return
        job.run_s = 0.0
        if job.state == RUNNING:
            now = self.clock()
            self._running = [(now if jid == job_id else end, seq, jid) for end, seq, jid in self._running]
            heapq.heapify(self._running)
            self.advance()

    def set_compute(self, state: str) -> None:
        """``down`` stops new starts and submissions; ``up``/``degraded`` resume them."""
        self.advance()
        self.accepting = self.starting = state != "down"
        self._schedule(self.clock())

    def queue_length(self) -> int:
        return len(self._queue)

    # -- time -----------------------------------------------------------------------------
    def advance(self) -> None:
        now = self.clock()
        while self._running and self._running[0][0] <= now:
            end, _, jid = heapq.heappop(self._running)
            job = self.jobs[jid]
            code: int | None = job.planned_exit
            if job.run_s > job.walltime_s:
                self._run(job, self._script_seconds(job.walltime_s))
                code = None
            elif self.runner is not None and not job.extra.get("ran"):
                code = self._run(job, self._script_seconds(job.walltime_s))
                if code is None and job.start_time is not None and job.start_time + job.walltime_s > end:
                    # the script outlived what its sleeps promised: it ends at its walltime
                    job.run_s = job.walltime_s + 1.0
                    heapq.heappush(self._running, (job.start_time + job.walltime_s, next(self._seq), job.id))
                    continue
            self.free_nodes += job.nodes
            if code is None:
                self._finish(job, TIMEOUT, end, exit_code=0)
            else:
                self._finish(job, COMPLETED if code == 0 else FAILED, end, code)
            self._schedule(end)
        self._last = now

    def _script_seconds(self, real_seconds: float) -> float | None:
        """Real (scaled) seconds as script seconds: what ``sleep`` may add up to."""
        return real_seconds / self.time_scale if self.time_scale > 0 else None

    def _run(self, job: SimJob, budget: float | None) -> int | None:
        """Run the job's script once (if there is a runner and the job started)."""
        if self.runner is None or job.start_time is None or job.extra.get("ran"):
            return job.planned_exit
        job.extra["ran"] = True
        return self.runner(job, budget)

    def _schedule(self, at: float) -> None:
        """Start queued jobs in FIFO order; a job that does not fit is skipped (first-fit
        backfill), so small jobs behind a wide one still run on idle nodes.

        Cost per call: O(started) while the head fits (the common case: jobs leave from the
        front of a deque), and a scan of the waiting jobs only while a wide head job blocks,
        stopping as soon as the nodes are used up. A job ending no longer copies the queue."""
        if not self.starting or not self._queue or self.free_nodes <= 0:
            return
        queue = self._queue
        while queue and queue[0].nodes <= self.free_nodes:
            self._start(queue.popleft(), at)
        if not queue:
            return
        queue[0].reason = "Resources"  # the head waits for nodes; the rest wait behind it
        if self.free_nodes <= 0:
            return
        started = []
        for job in itertools.islice(queue, 1, None):
            if self.free_nodes <= 0:
                break
            if job.nodes <= self.free_nodes:
                self._start(job, at)
                started.append(job)
        for job in started:
            queue.remove(job)

    def _start(self, job: SimJob, at: float) -> None:
        self.free_nodes -= job.nodes
        job.state = RUNNING
        job.reason = "None"
        job.start_time = at
        end = at + min(job.run_s, float(job.walltime_s))
        heapq.heappush(self._running, (end, next(self._seq), job.id))

    def _finish(self, job: SimJob, state: str, at: float, exit_code: int) -> None:
        job.state = state
        job.end_time = at
        job.exit_code = exit_code
        job.reason = "None"
        if job.start_time is not None and job.account and job.account in self.projects:
            self.projects[job.account].used_node_hours += job.nodes * (at - job.start_time) / 3600
        if self.on_finish is not None:
            self.on_finish(job)

    def reset(self) -> None:
        self.jobs.clear()
        self._queue.clear()
        self._running.clear()
        self.free_nodes = self.total_nodes
        self.accepting = self.starting = True
        for p in self.projects.values():
            p.used_node_hours = 0.0
