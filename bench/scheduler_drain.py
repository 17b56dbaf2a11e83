"""How the simulated scheduler's drain time grows with the queue's length.

Run: ``.venv/bin/python -m bench.scheduler_drain``

A queue of N one-node jobs on a two-node system is drained by one ``advance`` after every
job has had its turn. A job ending must not copy the queue, so 10x the jobs should take about
10x the time, not about 100x. Target: time(20,000) / time(2,000) below 25 (best of three
each). This was a unit test once; a timed ratio fails under load, so it lives here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

from simulators.common.scheduler import BatchSystem

TARGET = 25.0


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def drain(n: int) -> float:
    clock = _Clock()
    b = BatchSystem("m", nodes=2, clock=clock)
    for i in range(n):
        b.submit(name=f"j{i}", user="u", script="sleep 1", nodes=1)
    t0 = time.perf_counter()
    clock.t += n
    b.advance()
    elapsed = time.perf_counter() - t0
    if b.queue_length() != 0:
        raise SystemExit(f"the queue of {n} did not drain")
    return elapsed


def main() -> int:
    small = min(drain(2_000) for _ in range(3))
    big = min(drain(20_000) for _ in range(3))
    ratio = big / small
    print(f"{'jobs':>8} {'drain (ms)':>11}")
    print(f"{2_000:>8} {small * 1000:>11.1f}")
    print(f"{20_000:>8} {big * 1000:>11.1f}")
    ok = ratio < TARGET
    verdict = "ok" if ok else "FAIL"
    print(f"scheduler drain: 10x the jobs took {ratio:.1f}x the time (target < {TARGET:.0f}x): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
