"""uvicorn's HTTP/1.1 protocol with the two guards it lacks: a deadline for a request's
headers (uvicorn times out only an idle keep-alive connection, so a client that connects and
sends nothing, or sends its headers a byte a minute, holds a file descriptor forever) and a cap
on open connections (the one beyond it is closed at once, before it costs anything)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("superfed.http")


def guarded_protocol(header_timeout: float, max_connections: int) -> type[HttpToolsProtocol]:
    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                log.warning("refused a connection: %d open, the limit is %d", len(self.connections), max_connections)
                transport.abort()
                return
            self._arm()

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()  # the next request on a kept-alive connection gets its own deadline

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol


def uvicorn_options(*, header_timeout: float, keep_alive_timeout: float, max_connections: int) -> dict[str, Any]:
    """The uvicorn settings the broker (and the benchmarks' bare baseline) run with."""
    return {
        "http": guarded_protocol(header_timeout, max_connections),
        "timeout_keep_alive": keep_alive_timeout,
        "server_header": False,  # no banner naming the server and its version
    }
