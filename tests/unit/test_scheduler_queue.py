"""The simulated FIFO + backfill scheduler: order, backfill, reasons, and a long queue drains
in time linear in its length (a job ending no longer copies the queue)."""

from __future__ import annotations

import time

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


def test_a_long_queue_drains_in_linear_time() -> None:
    def drain(n: int) -> float:
        clock = Clock()
        b = BatchSystem("m", nodes=2, clock=clock)
        for i in range(n):
            b.submit(name=f"j{i}", user="u", script="sleep 1", nodes=1)
        t0 = time.perf_counter()
        clock.t += n  # every job has had its turn
        b.advance()
        assert b.queue_length() == 0 and all(j.state == "COMPLETED" for j in b.all())
        return time.perf_counter() - t0

    small, big = min(drain(2_000) for _ in range(3)), min(drain(20_000) for _ in range(3))
    assert big < 25 * small, (small, big)  # 10x the jobs: ~10x the time, not ~100x
