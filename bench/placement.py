"""How long one placement decision takes over 1, 10, 100 and 1,000 sites.

Run: ``.venv/bin/python bench/placement.py [--strategy best|priority|round-robin]``

Each size is timed with timeit (best of several repeats). A baseline in the same run walks the
same SiteViews doing only the filter checks (no reasons, no scores, no sorting), so the ratio to it
says what the policy costs on any machine. Targets (DESIGN.md): 100 sites under 1 ms, and growth
close to linear: time(1000) / time(100) near 10.
"""

from __future__ import annotations

import argparse
import random
import sys
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

from broker.placement import STRATEGIES, PlacementRequest, Policy, SiteView, place

NOW = 1_700_000_000.0
SIZES = (1, 10, 100, 1000)
REQUEST = PlacementRequest(project="m0001", nodes=4, walltime=6 * 3600, exclude=["site-0007"])


def make_sites(n: int, seed: int = 7) -> list[SiteView]:
    """A realistic mix: most sites eligible, the rest refused for one or two reasons each."""
    rnd = random.Random(seed)
    sites = []
    for i in range(n):
        odd = rnd.random()
        sites.append(
            SiteView(
                name=f"site-{i:04d}",
                kind=rnd.choice(["sfapi", "firecrest", "iri"]),
                enabled=odd > 0.05,
                draining=0.05 < odd < 0.08,
                weight=rnd.choice([0.5, 1.0, 1.0, 2.0]),
                max_nodes=rnd.choice([None, 2, 64, 1024, 1024]),
                max_walltime=rnd.choice([None, 4 * 3600, 24 * 3600, 24 * 3600]),
                capacity=rnd.choice([50, 100, 200]),
                health="degraded" if odd > 0.9 else ("down" if 0.08 < odd < 0.1 else "up"),
                checked_at=NOW - (100 if 0.1 < odd < 0.12 else rnd.uniform(0, 20)),
                circuit_open=0.12 < odd < 0.13,
                consecutive_failures=rnd.choice([0, 0, 0, 1]),
                backlog=rnd.randrange(0, 300),
                throughput=rnd.uniform(0, 40),
                remaining={"m0001": rnd.choice([0.0, 500.0, 12_000.0, 12_000.0]), "m0002": 10.0},
            )
        )
    return sites


def filters_only(req: PlacementRequest, sites: Sequence[SiteView], now: float) -> list[str]:
    """The baseline: the same checks as place()'s filters, as bare booleans."""
    allowed = set(req.sites) if req.sites is not None else None
    excluded = set(req.exclude)
    ok = []
    for s in sites:
        left = s.remaining.get(req.project) if s.remaining is not None else 1.0
        if (
            (req.site is None or s.name == req.site)
            and (allowed is None or s.name in allowed)
            and s.name not in excluded
            and s.enabled
            and not s.draining
            and s.checked_at is not None
            and now - s.checked_at <= s.stale_after
            and s.health in ("up", "degraded")
            and not s.circuit_open
            and left is not None
            and left > 0
            and (s.max_nodes is None or req.nodes <= s.max_nodes)
            and (s.max_walltime is None or req.walltime is None or req.walltime <= s.max_walltime)
        ):
            ok.append(s.name)
    return ok


def best_time(fn: Callable[[], object], repeats: int, budget: float = 0.05) -> float:
    """Seconds per call: best of ``repeats`` runs of a loop that lasts about ``budget`` s."""
    number, _ = timeit.Timer(fn).autorange()
    number = max(1, int(number * budget / 0.2))  # autorange aims at 0.2 s; scale to the budget
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", choices=STRATEGIES, default="best")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    policy = Policy(strategy=args.strategy, priority=[f"site-{i:04d}" for i in range(0, 50, 5)])

    print(f"placement, strategy {args.strategy}, best of {args.repeats} repeats")
    print(f"{'sites':>6} {'eligible':>8} {'µs/decision':>12} {'µs/site':>8}"
          f" {'baseline µs':>12} {'/ baseline':>11}")  # fmt: skip
    times: dict[int, float] = {}
    for n in SIZES:
        sites = make_sites(n)
        eligible = len(place(REQUEST, sites, policy, now=NOW, rr=3).eligible)
        assert eligible == len(filters_only(REQUEST, sites, NOW)), "baseline must agree"
        t = best_time(lambda s=sites: place(REQUEST, s, policy, now=NOW, rr=3), args.repeats)
        b = best_time(lambda s=sites: filters_only(REQUEST, s, NOW), args.repeats)
        times[n] = t
        print(
            f"{n:>6} {eligible:>8} {t * 1e6:>12.1f} {t * 1e6 / n:>8.2f}"
            f" {b * 1e6:>12.1f} {t / b:>11.1f}"
        )
    growth = times[1000] / times[100]
    verdict = "yes" if times[100] < 1e-3 else "NO"
    print(
        f"growth time(1000)/time(100) = {growth:.1f} (ideal 10);"
        f" 100 sites in {times[100] * 1e6:.0f} µs < 1 ms: {verdict}"
    )
    return 0 if times[100] < 1e-3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
