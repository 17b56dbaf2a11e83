"""Summarise a py-spy raw (collapsed) profile: the functions with the most samples, self and
inclusive. Run: ``.venv/bin/python bench/profile_top.py FILE [N]``"""

from __future__ import annotations

import sys
from collections import Counter


def main() -> int:
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        lines = f.readlines()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        c = int(count)
        total += c
        frames = stack.split(";")
        own[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    print(f"{total} samples")
    print("-- self")
    for f, c in own.most_common(n):
        print(f"{100 * c / total:5.1f}%  {f}")
    print("-- inclusive")
    for f, c in incl.most_common(n):
        print(f"{100 * c / total:5.1f}%  {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
