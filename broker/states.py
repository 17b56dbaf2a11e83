"""A broker job's states and the moves between them.

The states are PSI/J's (and the IRI API's), upper-case as the API shows them. Every change of a
job's state goes through ``advance()``, so a late or repeated report from a facility can never
move a job backwards or out of a final state.

Order (``JobState.rank``), after psij's ``job_state.py``::

    NEW (0)  <  QUEUED = HELD (1)  <  ACTIVE (2)  <  COMPLETED, FAILED, CANCELED (3, final)

Moves are forward in that order, with one deliberate exception: among QUEUED, HELD and ACTIVE
every move a facility reports is allowed, because a queued job can be held, a held one released,
and a running one requeued (Slurm ``--requeue``, node failure, preemption). ``ALLOWED`` spells
the whole table out; the tests check it against the rule, entry by entry.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ALLOWED", "FINAL", "JobState", "advance", "can_move"]


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


_RANK: dict[JobState, int] = {
    JobState.NEW: 0,
    JobState.QUEUED: 1,
    JobState.HELD: 1,
    JobState.ACTIVE: 2,
    JobState.COMPLETED: 3,
    JobState.FAILED: 3,
    JobState.CANCELED: 3,
}

FINAL: frozenset[JobState] = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELED})

_S = JobState
_AT_FACILITY = frozenset({_S.QUEUED, _S.HELD, _S.ACTIVE})

# from -> the states it may move to. Staying put is not a move (advance() returns None).
ALLOWED: dict[JobState, frozenset[JobState]] = {
    _S.NEW: _AT_FACILITY | FINAL,
    _S.QUEUED: frozenset({_S.HELD, _S.ACTIVE}) | FINAL,
    _S.HELD: frozenset({_S.QUEUED, _S.ACTIVE}) | FINAL,
    _S.ACTIVE: frozenset({_S.QUEUED, _S.HELD}) | FINAL,  # requeue / requeue-hold
    _S.COMPLETED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELED: frozenset(),
}

_BY_VALUE: dict[str, JobState] = {s.value: s for s in JobState}


def can_move(current: str, new: str) -> bool:
    """Whether a job in ``current`` may move to ``new``. Unknown words never move a job."""
    cur, nxt = _BY_VALUE.get(current), _BY_VALUE.get(new)
    if cur is None or nxt is None:
        return False
    return nxt in ALLOWED[cur]


def advance(current: str, new: str) -> JobState | None:
    """``new`` as a JobState when the move is allowed, else None (nothing to write)."""
    if can_move(current, new):
        return _BY_VALUE[new]
    return None
