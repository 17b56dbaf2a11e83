"""A broker job's states and the moves between them: the one state machine.

The states are PSI/J's (and the IRI API's), upper-case as the API shows them. ``ALLOWED`` is
the whole transition table. It is what runs: ``broker.store.jobs`` renders it into the Lua
script that makes every state change (atomically, with the indexes), so a late or repeated
report from a facility can never move a job out of a final state or back to NEW. Every other
list of states in the broker (the API's filter, the metrics, the CLI) is read from here.

Order (``JobState.rank``), after psij's ``job_state.py``::

    NEW (0)  <  QUEUED = HELD (1)  <  ACTIVE (2)  <  COMPLETED, FAILED, CANCELED (3, final)

Moves go forward in that order, with one deliberate exception: among QUEUED, HELD and ACTIVE
every move a facility reports is allowed, because a queued job can be held, a held one
released, and a running one requeued (Slurm ``--requeue``, a node failure, preemption:
Slurm's REQUEUED/REQUEUE_HOLD). A requeued job therefore shows QUEUED (or HELD) again, with
one more history entry; it stays in its site's active set and backlog, because it is still
the facility's job. A consequence, accepted on purpose: two polls of one site whose answers
arrive out of order may show a running job QUEUED until the next poll. Nothing leaves a
final state, and staying put is not a move (no history entry).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ALLOWED", "FINAL", "STATES", "JobState"]


class JobState(StrEnum):
    """The value is what the API shows and what Redis stores."""

    NEW = "NEW"
    QUEUED = "QUEUED"
    HELD = "HELD"
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def final(self) -> bool:
        return self in FINAL


# Every state's value, in order (for lists shown to people: filters, metrics, CLI choices).
STATES: tuple[str, ...] = tuple(s.value for s in JobState)

_RANK: dict[JobState, int] = {
    JobState.NEW: 0,
    JobState.QUEUED: 1,
    JobState.HELD: 1,
    JobState.ACTIVE: 2,
    JobState.COMPLETED: 3,
    JobState.FAILED: 3,
    JobState.CANCELED: 3,
}

# A StrEnum member equals its value, so ``"FAILED" in FINAL`` holds for a state read from Redis.
FINAL: frozenset[JobState] = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELED})

_S = JobState
_AT_FACILITY = frozenset({_S.QUEUED, _S.HELD, _S.ACTIVE})

# from -> the states it may move to.
ALLOWED: dict[JobState, frozenset[JobState]] = {
    _S.NEW: _AT_FACILITY | FINAL,
    _S.QUEUED: frozenset({_S.HELD, _S.ACTIVE}) | FINAL,
    _S.HELD: frozenset({_S.QUEUED, _S.ACTIVE}) | FINAL,
    _S.ACTIVE: frozenset({_S.QUEUED, _S.HELD}) | FINAL,  # requeue / requeue-hold
    _S.COMPLETED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELED: frozenset(),
}
