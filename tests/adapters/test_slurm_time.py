"""Slurm's time strings: every form ``--time`` accepts (slurm.schedmd.com/sbatch.html#OPT_time), read to
seconds by the reader here (the broker only writes them), and the broker's own ``--time`` read back
to the duration it was written from."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.slurm import format_walltime


def parse_walltime(text: str) -> int:
    """Slurm time strings (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) to
    seconds: the judge of what ``format_walltime`` writes."""
    text = text.strip()
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
        parts = [int(p) for p in text.split(":")]
        if len(parts) > 3:
            raise ValueError(text)
        parts += [0] * (3 - len(parts))
        h, m, s = parts
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:
            h, m, s = 0, parts[0], 0
        elif len(parts) == 2:
            h, (m, s) = 0, parts
        elif len(parts) == 3:
            h, m, s = parts
        else:
            raise ValueError(text)
    return days * 86400 + h * 3600 + m * 60 + s


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30 * 60),  # MM
        ("05:30", 5 * 60 + 30),  # MM:SS
        ("01:02:03", 3600 + 2 * 60 + 3),  # HH:MM:SS
        ("2-03", 2 * 86400 + 3 * 3600),  # D-HH
        ("2-03:04", 2 * 86400 + 3 * 3600 + 4 * 60),  # D-HH:MM
        ("2-03:04:05", 2 * 86400 + 3 * 3600 + 4 * 60 + 5),  # D-HH:MM:SS
        (" 00:10:00\n", 600),  # blanks around it are not part of it
    ],
)
def test_every_slurm_time_form(text: str, seconds: int) -> None:
    assert parse_walltime(text) == seconds


@given(st.integers(min_value=0, max_value=365 * 86400))
def test_the_time_the_broker_writes_reads_back_as_its_duration(seconds: int) -> None:
    assert parse_walltime(format_walltime(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "x", "1:xx", "1-2-3", "1:02:03:04"])
def test_what_is_not_a_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_walltime(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(59, "00:00:59"), (3600, "01:00:00"), (86399, "23:59:59"), (86400, "1-00:00:00"), (90061, "1-01:01:01")],
)
def test_the_broker_writes_days_as_slurm_does(seconds: int, text: str) -> None:
    # D-HH:MM:SS from a day on (sbatch --time's form), never 24 hours or more in the HH field
    assert format_walltime(seconds) == text
