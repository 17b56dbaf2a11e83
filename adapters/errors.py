"""One error taxonomy for every adapter.

    AdapterError
    ├── SiteUnavailable         retriable: try later or fail over
    │   ├── SiteTimeout         no answer in time (the request may have reached the facility)
    │   ├── SiteConnectError    could not connect (it certainly did not)
    │   ├── SiteOverloaded      429/503, carries ``retry_after`` seconds when the facility gave one
    │   ├── SiteServerError     other 5xx
    │   ├── ComponentDown       the facility says the component is down (in-band or by status)
    │   └── GarbageResponse     the answer did not parse or had the wrong shape
    ├── SiteRejected            permanent: the facility refused this request; ``message`` is its own
    ├── AuthFailed              credentials missing, bad, expired or revoked; ``reason`` says which
    └── NotFound                the job, file or system does not exist there

Only ``adapters/http.py`` turns httpx exceptions and status codes into these.  Retry code reads
``exc.retriable``; nothing else inspects the class tree.  Messages never contain secrets.
"""

from __future__ import annotations

from typing import ClassVar


class AdapterError(Exception):
    retriable: ClassVar[bool] = False
    kind: ClassVar[str] = "error"

    def __init__(self, message: str, *, site: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.site = site
        self.status = status

    def __str__(self) -> str:
        where = f"{self.site}: " if self.site else ""
        return f"{where}{self.message}"


class SiteUnavailable(AdapterError):
    retriable = True
    kind = "unavailable"


class SiteTimeout(SiteUnavailable):
    kind = "timeout"


class SiteConnectError(SiteUnavailable):
    kind = "connect"


class SiteOverloaded(SiteUnavailable):
    kind = "overloaded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object):
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class SiteServerError(SiteUnavailable):
    kind = "server_error"


class ComponentDown(SiteUnavailable):
    kind = "down"


class GarbageResponse(SiteUnavailable):
    kind = "garbage"


class SiteRejected(AdapterError):
    kind = "rejected"


class AuthFailed(AdapterError):
    kind = "auth"


class NotFound(AdapterError):
    kind = "not_found"
