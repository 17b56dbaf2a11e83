"""What a PBS ``Exit_status`` that the job's own program did not return means, in words.

PBS reports a job ended by a signal as 256 + the signal's number (Slurm's sacct says
``0:9``; a shell says 128 + 9): 265 is SIGKILL, what ``qdel`` ends a running job with once
its grace period is over. Negative values are PBS's own ``JOB_EXEC_*`` codes for jobs it
ended or could not start (pbs_job.h); -29 is the one users meet, the walltime limit."""

from __future__ import annotations

import signal

SIGNAL_BASE = 256
JOB_EXEC = {
    -1: "PBS could not start it (JOB_EXEC_FAIL1)",
    -2: "PBS could not start it (JOB_EXEC_FAIL2)",
    -3: "PBS will retry it (JOB_EXEC_RETRY)",
    -4: "PBS aborted it while starting (JOB_EXEC_INITABT)",
    -29: "killed by PBS for exceeding its walltime (JOB_EXEC_KILL_WALLTIME)",
}


def exit_reason(code: int | None) -> str | None:
    """Why a PBS job ended with ``code``, or None when the code is the program's own."""
    if code is None:
        return None
    if code > SIGNAL_BASE:
        number = code - SIGNAL_BASE
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        after = ", as qdel does" if number == signal.SIGKILL else ""
        return f"exit {code}: killed by {name}{after} (PBS reports 256 + the signal's number, {number})"
    if code < 0:
        return f"exit {code}: {JOB_EXEC.get(code, f'PBS ended it (JOB_EXEC code {code})')}"
    return None
