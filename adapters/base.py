"""The interface every site adapter implements, and the base class holding what they share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

import httpx
import msgspec

from adapters.http import HttpSettings, Lanes, make_client
from adapters.profile import Vocabulary
from adapters.types import (
    Allocation,
    FileEntry,
    JobStatus,
    SiteHealth,
    SubmitReceipt,
    SubmitRequest,
)


@runtime_checkable
class SiteAdapter(Protocol):
    kind: ClassVar[str]
    name: str
    systems: list[str]

    async def health(self) -> SiteHealth:
        """Every component's state in up/degraded/down/unknown, and open incidents."""
        ...

    async def submit(self, req: SubmitRequest) -> SubmitReceipt:
        """Submit one job, tagged with ``req.tag``. Raises an ``AdapterError``."""
        ...

    async def find_by_tag(self, tag: str, system: str) -> SubmitReceipt | None:
        """The facility job carrying ``tag``, if one exists: settles an uncertain submission."""
        ...

    async def statuses(self, native_ids: Sequence[str], system: str) -> dict[str, JobStatus]:
        """States of many jobs in as few requests as the protocol allows. Ids the facility
        does not know are left out (absence is not completion)."""
        ...

    async def cancel(self, native_id: str, system: str) -> None:
        """Ask the facility to cancel. A job already final is not an error."""
        ...

    async def list_dir(self, path: str, system: str) -> list[FileEntry]: ...

    async def read_file(self, path: str, system: str, max_bytes: int) -> bytes:
        """A small file's bytes; ``SiteRejected`` when it is larger than ``max_bytes``."""
        ...

    async def write_file(self, path: str, data: bytes, system: str) -> None: ...

    async def allocations(self) -> list[Allocation]:
        """Each project's allocation and use at this site."""
        ...

    async def aclose(self) -> None: ...


class AdapterBase:
    """Holds the site's identity and its pooled HTTP client. Subclasses set ``kind`` and
    ``Auth`` (a msgspec Struct describing where its credentials come from)."""

    kind: ClassVar[str] = ""
    Auth: ClassVar[type[msgspec.Struct]]
    # protocol versions a site of this kind may be pinned to (``api_version``); () = only one
    API_VERSIONS: ClassVar[tuple[str, ...]] = ()
    # where a portable job's queue, node type and required attributes go (adapters/profile.py)
    portable: ClassVar[Vocabulary] = Vocabulary(queue="queue_name", queue_word="queue")

    def __init__(
        self,
        *,
        name: str,
        url: str,
        systems: list[str],
        auth: msgspec.Struct,
        http: HttpSettings | None = None,
        client: httpx.AsyncClient | Lanes | None = None,
    ):
        self.name = name
        self.url = url.rstrip("/")
        self.systems = list(systems)
        self.auth = auth
        self.http_settings = http or HttpSettings()
        self._owns_client = client is None
        self.client: httpx.AsyncClient | Lanes = client or make_client(self.url, self.http_settings)

    @classmethod
    def endpoints(cls, url: str, auth: msgspec.Struct) -> list[str]:
        """Every URL this kind of adapter sends the site's credentials to: the API itself and,
        where the auth names one, its token endpoint. The broker binds each credential to the
        hosts its operator allowed, so this list must be complete."""
        token_url = getattr(auth, "token_url", None)
        return [url, token_url] if isinstance(token_url, str) else [url]

    def system_or_default(self, system: str | None) -> str:
        return system or self.systems[0]

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    def __repr__(self) -> str:  # never the auth struct: it may name secrets' places only, but keep it short
        return f"<{type(self).__name__} {self.name} {self.url}>"
