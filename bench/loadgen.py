"""A small HTTP/1.1 load generator on asyncio (uvloop when installed): keep-alive connections
speaking raw HTTP, no client library in the way (httpx manages ~3k requests/s on a core; this
manages several times that, see bench/README.md).

Two modes:
- closed loop (default): each connection sends its next request as soon as the last answer
  is in; measures the most the server does at that concurrency.
- paced (``"rate": R``): the connections together start R requests a second on a fixed
  schedule, and a request's latency counts from when it *should* have started, so a server
  that falls behind is not flattered (no coordinated omission).

Used by bench/common.py when ``wrk`` is absent, and always for the paced latency rows.
Run: ``.venv/bin/python bench/loadgen.py '{"url": "http://127.0.0.1:8000/x", "duration": 5}'``
prints one JSON object: rps, p50_ms, p99_ms, requests, bad.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class _Conn:
    def __init__(self, host: str, port: int, request: bytes):
        self.host, self.port, self.request = host, port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def once(self) -> int:
        """One request and its whole answer; returns the status code."""
        return (await self.exchange())[0]

    async def exchange(self) -> tuple[int, bytes]:
        """One request and its whole answer: the status code and the body."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
            elif name == b"transfer-encoding":
                raise RuntimeError("chunked answers are not supported by this generator")
        body = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def build_request(url: str, method: str, headers: dict[str, str], body: bytes | None) -> tuple[str, int, bytes]:
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    body = spec.get("body")
    host, port, req = build_request(spec["url"], spec.get("method", "GET"), spec.get("headers") or {},
                                    body.encode() if isinstance(body, str) else None)
    n = int(spec.get("connections", 100))
    duration = float(spec.get("duration", 5))
    rate = spec.get("rate")
    conns = [_Conn(host, port, req) for _ in range(n)]
    await asyncio.gather(*(c.open() for c in conns))
    lat: list[float] = []
    bad = 0
    t0 = time.perf_counter()
    end = t0 + duration

    async def closed(c: _Conn) -> None:
        nonlocal bad
        while (start := time.perf_counter()) < end:
            try:
                status = await c.once()
            except (OSError, asyncio.IncompleteReadError, ValueError):
                bad += 1
                c.close()
                continue
            lat.append(time.perf_counter() - start)
            if not 200 <= status < 300:
                bad += 1

    async def paced(i: int, c: _Conn) -> None:
        nonlocal bad
        interval = n / float(rate)
        due = t0 + i * interval / n  # connections interleave evenly
        while due < end:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                status = await c.once()
            except (OSError, asyncio.IncompleteReadError, ValueError):
                bad += 1
                c.close()
                due += interval
                continue
            lat.append(time.perf_counter() - due)  # from when it was due, not when it went
            if not 200 <= status < 300:
                bad += 1
            due += interval

    if rate:
        await asyncio.gather(*(paced(i, c) for i, c in enumerate(conns)))
    else:
        await asyncio.gather(*(closed(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    return {"rps": len(lat) / elapsed, "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
            "requests": len(lat), "bad": bad}


def main() -> int:
    arg = sys.argv[1]
    # @FILE: the spec in a file (a batch's body is too long for a command line)
    spec = json.loads(Path(arg[1:]).read_text() if arg.startswith("@") else arg)
    try:
        import uvloop

        result = uvloop.run(run(spec))
    except ImportError:
        result = asyncio.run(run(spec))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
