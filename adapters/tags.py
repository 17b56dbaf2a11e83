"""Where the broker's job id (the tag) rides at a facility, so that a submission whose
outcome was unknown can be found again.

Slurm keeps a job's ``--comment`` (``superfed:<tag>``); where a protocol does not return the
comment (FirecREST v2's job model, PBS at ALCF) the tag also ends the job name (``<name>.sf-<tag>``).
"""

from __future__ import annotations

import re

COMMENT_PREFIX = "superfed:"
NAME_MARK = ".sf-"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")  # what Slurm and PBS job names may not hold


def tag_comment(tag: str) -> str:
    return f"{COMMENT_PREFIX}{tag}"


def tag_from_comment(comment: str | None) -> str | None:
    if comment and comment.startswith(COMMENT_PREFIX):
        return comment[len(COMMENT_PREFIX) :].strip() or None
    return None


def name_with_tag(name: str | None, tag: str, *, default: str = "job", max_base: int = 80) -> str:
    """The job's own name made scheduler-safe and cut to ``max_base``, then the tag."""
    base = _UNSAFE.sub("_", name or "")[:max_base].rstrip(".") or default
    return f"{base}{NAME_MARK}{tag}"


def tag_from_name(name: str | None) -> str | None:
    if not name or NAME_MARK not in name:
        return None
    return name.rsplit(NAME_MARK, 1)[1] or None
