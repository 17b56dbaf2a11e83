"""The simulated FIFO + backfill scheduler: order, backfill, reasons, and a long queue drains
completely (its time, linear in its length, is measured by bench/scheduler_drain.py)."""

from __future__ import annotations

from simulators.common.scheduler import BatchSystem


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_fifo_with_backfill_and_reasons() -> None:
    clock = Clock()
    b = BatchSystem("m", nodes=4, clock=clock)
    a = b.submit(name="a", user="u", script="sleep 10", nodes=3)
    wide = b.submit(name="wide", user="u", script="sleep 10", nodes=4)
    small = b.submit(name="small", user="u", script="sleep 5", nodes=1)
    late = b.submit(name="late", user="u", script="sleep 5", nodes=1)
    assert (a.state, wide.state, small.state, late.state) == ("RUNNING", "PENDING", "RUNNING", "PENDING")
    assert wide.reason == "Resources" and late.reason == "Priority"
    clock.t += 5  # small ends: late backfills the freed node while wide still waits
    b.advance()
    assert (small.state, late.state, wide.state) == ("COMPLETED", "RUNNING", "PENDING")
    clock.t += 5  # a and late end: wide (the head) starts
    b.advance()
    assert wide.state == "RUNNING" and b.queue_length() == 0
    assert b.cancel(wide.id) is wide and wide.state == "CANCELLED" and b.free_nodes == 4


def test_a_long_queue_drains_completely_in_order() -> None:
    # how the drain time grows with the queue's length is a benchmark (bench/scheduler_drain.py):
    # a timed ratio fails under load; here only what must hold on any machine
    clock = Clock()
    b = BatchSystem("m", nodes=2, clock=clock)
    jobs = [b.submit(name=f"j{i}", user="u", script="sleep 1", nodes=1) for i in range(5_000)]
    assert b.queue_length() == 5_000 - 2
    clock.t += 5_000 / 2  # every job has had its turn
    b.advance()
    assert b.queue_length() == 0 and all(j.state == "COMPLETED" for j in jobs)
    assert b.free_nodes == 2
