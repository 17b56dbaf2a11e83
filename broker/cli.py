"""The ``superfed`` command line (API.md §2)."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from simulators import cli as sim_cli

    p = argparse.ArgumentParser(prog="superfed", description="One API over several HPC facilities.")
    sub = p.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("sim", help="run one simulated facility")
    sim_cli.add_arguments(sim)
    sim.set_defaults(func=sim_cli.run)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
