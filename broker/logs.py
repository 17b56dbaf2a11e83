"""Log lines: JSON lines in production (one object a line, for a log shipper), readable text in
the demo; and the job and site a line is about on every such line.

Why contextvars rather than ``extra=`` at each call: the job id is known where a worker starts
a job (broker/worker.py) and the site where a try begins, while the lines come from many
modules below them. Each job runs as its own asyncio task, whose context is a copy, so what is
bound for one job never leaks into another's lines."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import IO, Any

FORMATS = ("json", "text")
# what the current task's lines are about: one mutable dict per job, set where the job starts.
# A dict, not a value per key, because a job's code may run parts of it in child tasks (gather,
# wait_for: each with a copy of the context): a site bound down there must still reach the
# worker's own line about the job's end, so it is written into the dict both contexts share.
ABOUT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("superfed_log_about", default=None)

_TEXT = "%(asctime)s %(name)s %(levelname)s %(message)s%(about)s"


def bind(*, job_id: str | None = None, site: str | None = None) -> None:
    """The current task's lines are about this job (a new job forgets the last one's site), and
    from now on this site."""
    about = ABOUT.get()
    if job_id is not None or about is None:
        about = {}
        ABOUT.set(about)
    if job_id is not None:
        about["job_id"] = job_id
    if site is not None:
        about["site"] = site


class _About(logging.Filter):
    """Puts the bound job id and site on each record (an ``extra=`` given at the call wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        about = ABOUT.get() or {}
        for key in ("job_id", "site"):
            if getattr(record, key, None) is None:
                setattr(record, key, about.get(key))
        bits = [f"{k}={v}" for k in ("job_id", "site") if (v := getattr(record, k))]
        record.about = f" [{' '.join(bits)}]" if bits else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("job_id", "site"):
            if (value := getattr(record, key, None)) is not None:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing ``fmt`` ("json" or "text") to ``stream`` (stderr), with the job and site added."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    h = logging.StreamHandler(stream)
    h.addFilter(_About())
    h.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT))
    return h


def setup(fmt: str, level: int = logging.INFO) -> None:
    """The process' logging (``superfed serve`` and ``superfed worker`` call it once)."""
    root = logging.getLogger()
    # replace only a handler this function installed before: others (pytest's capture, an
    # embedding program's) are not ours to drop
    for old in [h for h in root.handlers if getattr(h, "superfed", False)]:
        root.removeHandler(old)
    new = handler(fmt)
    new.superfed = True  # type: ignore[attr-defined]
    root.addHandler(new)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per facility request is noise
