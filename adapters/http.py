"""The one place where httpx exceptions and HTTP status codes become ``AdapterError``s.

``SiteHTTP`` wraps a site's pooled HTTP client (``Lanes``, or an ``httpx.AsyncClient``): bearer
auth from a ``TokenCache`` (a 401 refreshes once and retries once, never loops), retries of
idempotent requests with exponential backoff and full jitter, and ``Retry-After`` honoured.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import random
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import msgspec

from adapters.errors import (
    AdapterError,
    AuthFailed,
    GarbageResponse,
    NotFound,
    SiteConnectError,
    SiteOverloaded,
    SiteRejected,
    SiteServerError,
    SiteTimeout,
)
from adapters.tokens import TokenCache


class HttpSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    max_connections: int = 50
    max_keepalive: int = 20
    retries: int = 2  # extra tries for idempotent requests
    backoff_base: float = 0.1
    backoff_cap: float = 2.0


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context (system trust, certificate and host checks), made once per
    process: making it loads the trust store, ~30 ms of CPU, which httpx does for every client
    it is not handed a context."""
    return httpx.create_ssl_context()


def make_client(base_url: str, settings: HttpSettings) -> Lanes:
    return Lanes(base_url, settings)


class Lanes:
    """A site's HTTP client: httpx clients ("lanes") of one connection each, a request going
    to the lane with the fewest requests under way (a response is read whole, so a lane is
    free again when its request returns).

    Why not one httpx client with a pool of connections: httpcore looks over every connection
    of the pool (a poll(2) on each idle one) and every waiting request at each request's start
    and end, so a request cost ~0.9-1.0 ms of CPU with 8 under way on one client against
    ~0.6 ms with a lane each (measured on the 2-core bench machine; a worker sends 8 at once).
    A lane is added when every lane is busy, up to ``max_connections``; the first
    ``max_keepalive`` keep their connection open between requests."""

    def __init__(self, base_url: str, settings: HttpSettings):
        self.base_url = base_url
        self.settings = settings
        self._lanes: list[httpx.AsyncClient] = []
        self._busy: list[int] = []
        self._closed = False

    def _pick(self) -> int:
        if self._lanes:
            i = min(range(len(self._busy)), key=self._busy.__getitem__)
            if self._busy[i] == 0 or len(self._lanes) >= max(1, self.settings.max_connections):
                return i
        keep = len(self._lanes) < self.settings.max_keepalive
        self._lanes.append(
            httpx.AsyncClient(
                base_url=self.base_url,
                timeout=httpx.Timeout(self.settings.read_timeout, connect=self.settings.connect_timeout),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1 if keep else 0),
                follow_redirects=False,
                verify=_tls(),
            )
        )
        self._busy.append(0)
        return len(self._lanes) - 1

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the client has been closed")  # as httpx says
        i = self._pick()
        self._busy[i] += 1
        try:
            return await self._lanes[i].request(method, url, **kwargs)
        finally:
            self._busy[i] -= 1

    async def aclose(self) -> None:
        self._closed = True
        for lane in self._lanes:
            await lane.aclose()


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# An extractor pulls the facility's own message out of an error body, for the error text.
MessageOf = Callable[[httpx.Response], str]


def default_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        return text[:300] if text and not text.lstrip().startswith("<") else resp.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "detail", "error", "description", "title"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value:
                return "; ".join(str(v.get("msg", v)) if isinstance(v, dict) else str(v) for v in value)
    return resp.reason_phrase or f"HTTP {resp.status_code}"


def error_for(resp: httpx.Response, site: str, message_of: MessageOf = default_message) -> AdapterError:
    """Map a non-2xx response to the taxonomy."""
    code = resp.status_code
    msg = message_of(resp)
    if code in (401, 403):
        return AuthFailed(f"authentication refused (HTTP {code}): {msg}", site=site, status=code)
    if code == 404:
        return NotFound(msg, site=site, status=code)
    if code in (429, 503):
        return SiteOverloaded(
            f"HTTP {code}: {msg}",
            retry_after=parse_retry_after(resp.headers.get("retry-after")),
            site=site,
            status=code,
        )
    if code >= 500:
        return SiteServerError(f"HTTP {code}: {msg}", site=site, status=code)
    return SiteRejected(msg, site=site, status=code)


class SiteHTTP:
    def __init__(
        self,
        site: str,
        client: httpx.AsyncClient | Lanes,
        *,
        tokens: TokenCache | None = None,
        settings: HttpSettings | None = None,
        message_of: MessageOf = default_message,
    ):
        self.site = site
        self.client = client
        self.tokens = tokens
        self.settings = settings or HttpSettings()
        self.message_of = message_of

    async def request(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool | None = None,
        auth: bool = True,
        ok: tuple[int, ...] = (),
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request; return the response when it is 2xx (or in ``ok``), else raise.

        ``idempotent`` defaults to the method's nature (GET/HEAD/PUT/DELETE/OPTIONS)."""
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
        attempts = 1 + (self.settings.retries if idempotent else 0)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._send_once(method, url, auth=auth, ok=ok, headers=headers, **kwargs)
            except AuthFailed as exc:
                # One refresh and one retry per call: an expired token is normal, a loop is not.
                if not auth or self.tokens is None or refreshed or exc.status != 401:
                    raise
                refreshed = True
                self.tokens.invalidate()
                attempt -= 1
            except (SiteTimeout, SiteConnectError, SiteOverloaded, SiteServerError) as exc:
                if attempt >= attempts:
                    raise
                await asyncio.sleep(self._delay(attempt, exc))

    def _delay(self, attempt: int, exc: AdapterError) -> float:
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, self.settings.backoff_cap * 4)
        cap = min(self.settings.backoff_cap, self.settings.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0, cap)

    async def _send_once(
        self,
        method: str,
        url: str,
        *,
        auth: bool,
        ok: tuple[int, ...],
        headers: Mapping[str, str] | None,
        **kwargs: Any,
    ) -> httpx.Response:
        hdrs = dict(headers or {})
        if auth and self.tokens is not None:
            token = await self.tokens.get()
            hdrs["Authorization"] = f"Bearer {token.reveal()}"
        try:
            resp = await self.client.request(method, url, headers=hdrs, **kwargs)
        except httpx.TimeoutException as exc:
            raise SiteTimeout(f"{method} {url}: no answer in time ({type(exc).__name__})", site=self.site) from None
        except httpx.ConnectError as exc:
            raise SiteConnectError(f"{method} {url}: cannot connect ({exc})", site=self.site) from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise SiteServerError(f"{method} {url}: connection broken ({type(exc).__name__})", site=self.site) from None
        if resp.is_success or resp.status_code in ok:
            return resp
        raise error_for(resp, self.site, self.message_of)


def decode_json(resp: httpx.Response, site: str, type_: Any = Any) -> Any:
    """Decode (and, given a type, validate) a JSON body; a bad one is a retriable GarbageResponse."""
    try:
        return msgspec.json.decode(resp.content, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        ctype = resp.headers.get("content-type", "?")
        raise GarbageResponse(
            f"unreadable answer to {resp.request.method} {resp.request.url.path} "
            f"(HTTP {resp.status_code}, {ctype}): {exc}",
            site=site,
            status=resp.status_code,
        ) from None
