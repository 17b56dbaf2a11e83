"""The job state machine: the whole transition table, entry by entry."""

from __future__ import annotations

import itertools

import pytest

from adapters.types import FINAL_STATES
from broker.states import ALLOWED, FINAL, JobState, advance, can_move

N, Q, H, A, C, F, X = "NEW", "QUEUED", "HELD", "ACTIVE", "COMPLETED", "FAILED", "CANCELED"
STATES = [N, Q, H, A, C, F, X]

# Every (from, to) pair that may happen; all other 49 - len(MOVES) pairs are refused.
MOVES = {
    (N, Q), (N, H), (N, A), (N, C), (N, F), (N, X),
    (Q, H), (Q, A), (Q, C), (Q, F), (Q, X),
    (H, Q), (H, A), (H, C), (H, F), (H, X),
    (A, Q), (A, H), (A, C), (A, F), (A, X),
}  # fmt: skip


def test_states_are_the_psij_states() -> None:
    assert [s.value for s in JobState] == STATES
    assert {s.value for s in FINAL} == FINAL_STATES == {C, F, X}
    assert set(ALLOWED) == set(JobState)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(STATES, STATES)))
def test_transition_table(current: str, new: str) -> None:
    allowed = (current, new) in MOVES
    assert can_move(current, new) is allowed
    assert advance(current, new) == (new if allowed else None)
    assert can_move(JobState(current), JobState(new)) is allowed


@pytest.mark.parametrize(("current", "new"), list(itertools.product(STATES, STATES)))
def test_table_follows_the_rule(current: str, new: str) -> None:
    """Forward by rank; QUEUED/HELD/ACTIVE may move among themselves; nothing leaves a final
    state; staying put is not a move."""
    cur, nxt = JobState(current), JobState(new)
    at_facility = {Q, H, A}
    expected = (
        not cur.final
        and cur is not nxt
        and (nxt.rank > cur.rank or (current in at_facility and new in at_facility))
    )
    assert can_move(cur, nxt) is expected


def test_order_and_final_flags() -> None:
    ranks = {s.value: s.rank for s in JobState}
    assert ranks == {N: 0, Q: 1, H: 1, A: 2, C: 3, F: 3, X: 3}
    assert [s.value for s in JobState if s.final] == [C, F, X]


def test_advance_returns_the_enum_member() -> None:
    moved = advance("QUEUED", "ACTIVE")
    assert moved is JobState.ACTIVE
    assert moved == "ACTIVE" and str(moved) == "ACTIVE"


@pytest.mark.parametrize(
    ("current", "new"), [(N, "UNKNOWN"), ("bogus", A), (A, "active"), ("", "")]
)
def test_unknown_words_never_move_a_job(current: str, new: str) -> None:
    assert can_move(current, new) is False
    assert advance(current, new) is None
