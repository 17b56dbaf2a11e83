"""What non-admin callers see of a facility's error text: its category and a short,
sanitised sentence, never the facility's verbatim answer (which may carry internal host names,
paths, account details or markup). Admins see the text as recorded."""

from __future__ import annotations

import re

MAX_CHARS = 160
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)
_MARKUP = re.compile(r"<[^>]{0,200}>")
_SECRETISH = re.compile(r"\b(?:bearer|token|secret|password|passwd|key)\b[=: ]+\S+", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")


def sanitise(text: str | None) -> str | None:
    """One short line: no control characters, markup, URLs, e-mail addresses or anything that
    looks like a credential, at most ``MAX_CHARS`` characters."""
    if text is None:
        return None
    out = _CONTROL.sub(" ", text)
    out = _MARKUP.sub(" ", out)
    out = _URL.sub("[url]", out)
    out = _EMAIL.sub("[address]", out)
    out = _SECRETISH.sub("[redacted]", out)
    out = " ".join(out.split())
    return out if len(out) <= MAX_CHARS else out[: MAX_CHARS - 1].rstrip() + "…"
