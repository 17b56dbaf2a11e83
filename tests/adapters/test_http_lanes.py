"""``Lanes``, a site's HTTP client (adapters/http.py), against a real local HTTP server that
counts the connections it is given: concurrent requests get a connection each, up to
``max_connections``; later ones reuse the kept-alive connections; a closed client refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.http import HttpSettings, Lanes

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Server:
    """HTTP/1.1 keep-alive; every answer is 200 after ``delay`` seconds."""

    def __init__(self, delay: float):
        self.delay = delay
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.requests += 1
                await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[_Server, str]]:
    s = _Server(delay=0.2)
    srv = await asyncio.start_server(s.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield s, f"http://127.0.0.1:{port}"
    finally:
        srv.close()


async def test_requests_under_way_get_a_connection_each_up_to_the_limit(server: tuple[_Server, str]) -> None:
    s, url = server
    client = Lanes(url, HttpSettings(max_connections=4, max_keepalive=4))
    try:
        answers = await asyncio.gather(*(client.request("POST", "/jobs", content=b"x") for _ in range(3)))
        assert [a.status_code for a in answers] == [200] * 3
        assert s.connections == 3  # three at once, not one after the other
        for _ in range(4):  # one at a time: a kept-alive connection, no new one
            assert (await client.request("GET", "/status")).text == "ok"
        assert s.connections == 3
        await asyncio.gather(*(client.request("GET", "/status") for _ in range(6)))
        assert s.connections == 4 and s.requests == 13  # never more than max_connections
    finally:
        await client.aclose()
    with pytest.raises(RuntimeError):
        await client.request("GET", "/status")


async def test_only_max_keepalive_connections_stay_open(server: tuple[_Server, str]) -> None:
    s, url = server
    client = Lanes(url, HttpSettings(max_connections=3, max_keepalive=1))
    try:
        await asyncio.gather(*(client.request("GET", "/a") for _ in range(3)))
        assert s.connections == 3
        await asyncio.gather(*(client.request("GET", "/b") for _ in range(3)))
        assert s.connections == 5  # the first lane's connection was kept; the other two were not
    finally:
        await client.aclose()
