"""How the API commands print: tables that fit the terminal, states in colour, on a TTY; the
same rows as plain lines otherwise (no header, no colour, nothing cut), so ``| awk``, ``| grep``
and scripts read what they always read."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

# states of jobs and of sites' health, the colour each reads in (ANSI SGR codes)
COLOURS = {
    "COMPLETED": "32", "up": "32",
    "FAILED": "31", "down": "31",
    "CANCELED": "33", "degraded": "33", "draining": "33",
    "ACTIVE": "36", "QUEUED": "34", "HELD": "35", "NEW": "37", "unknown": "90", "disabled": "90",
}


def is_tty() -> bool:
    # NO_COLOR (no-color.org) is how a user says no escapes even on a terminal
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, word: str | None = None) -> str:
    """``text`` in the colour of ``word`` (default: itself) on a TTY; as is otherwise."""
    code = COLOURS.get(word if word is not None else text.strip())
    return f"\033[{code}m{text}\033[0m" if code and is_tty() else text


def emit_json(obj: Any) -> None:
    # names in any script as written (a placement reason's arrow, a job called µ-scan)
    sys.stdout.write(json.dumps(msgspec.to_builtins(obj), indent=2, ensure_ascii=False) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, colour_cols: Sequence[int] = (),
          plain: Sequence[str] | None = None) -> None:
    """Rows under a header, each column as wide as its widest cell, and the last column cut to
    the terminal's width, on a TTY. Elsewhere, ``plain`` lines (one per row) when given, or the
    cells joined by two spaces: what a script has always parsed."""
    if not is_tty():
        for i, row in enumerate(rows):
            print(plain[i] if plain is not None else "  ".join(row).rstrip())
        return
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    room = shutil.get_terminal_size((120, 24)).columns - sum(w + 2 for w in widths[:-1])
    widths[-1] = max(8, min(widths[-1], room))

    def line(cells: Sequence[str], bold: bool = False) -> str:
        out = []
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
            text = cell if len(cell) <= w else cell[: w - 1] + "…"
            padded = text.ljust(w) if i < len(cells) - 1 else text
            out.append(paint(padded, cell) if i in colour_cols else padded)
        joined = "  ".join(out).rstrip()
        return f"\033[1m{joined}\033[0m" if bold else joined

    print(line(headers, bold=True))
    for row in rows:
        print(line(row))
