"""Every benchmark, one after another, each in its own process with a time limit; then their
last lines (the verdicts) together.

Run: ``.venv/bin/python bench/run.py [--only status,intake] [--quick]``

``--quick`` shortens the load runs (5 s instead of 10) and the memory fill (20,000 jobs instead
of 100,000), for a check rather than figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def plan(quick: bool) -> dict[str, list[str]]:
    d = "5" if quick else "10"
    return {
        "placement": ["bench/placement.py"],
        "status": ["-m", "bench.status", "--duration", d],
        "intake": ["-m", "bench.intake", "--duration", d],
        "batch": ["-m", "bench.batch", "--duration", d],
        "durability": ["-m", "bench.durability", "--duration", "3" if quick else "5"],
        "dispatch": ["-m", "bench.dispatch", "--jobs", "1000"],
        "failover": ["-m", "bench.failover"],
        "memory": ["-m", "bench.memory", "--jobs", "20000" if quick else "100000"],
        "simulators": ["-m", "bench.simulators", "--duration", d],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated names: " + ", ".join(plan(False)))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    steps = plan(args.quick)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(steps)
    verdicts: list[tuple[str, int, str]] = []
    for name in names:
        print(f"\n######## {name}", flush=True)
        t0 = time.monotonic()
        try:
            # each bench stops what it starts (process groups, its own deadline); this limit is
            # the last resort
            proc = subprocess.run([PY, *steps[name]], cwd=ROOT, capture_output=True, text=True, timeout=900)
            out, code = proc.stdout, proc.returncode
            if proc.returncode not in (0, 1):
                out += proc.stderr[-2000:]
        except subprocess.TimeoutExpired as exc:
            out, code = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""), 124
        print(out, end="", flush=True)
        lines = [ln for ln in out.splitlines() if ln.strip()]
        verdicts.append((name, code, lines[-1] if lines else "(no output)"))
        print(f"({time.monotonic() - t0:.0f} s)")
    print("\n######## summary")
    for name, code, last in verdicts:
        print(f"{name:<11} exit {code}: {last}")
    return 0 if all(code == 0 for _, code, _ in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
