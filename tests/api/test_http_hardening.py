"""Issue 11, HTTP findings: security headers and a CSP the docs page works under, no server
banner, deeply nested JSON is a 400 (never a 500), and the server closes connections that
send no request headers in time or exceed the connection cap. Real uvicorn on loopback with
the broker's own server settings (``broker.http_guard``)."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from litestar.testing import TestClient

from broker.app import create_app
from broker.http_guard import uvicorn_options
from tests.api.conftest import auth, settings_for
from tests.support.servers import ThreadedServer


def _closed_by_server(sock: socket.socket, bound: float = 15.0) -> bool:
    """Poll until the server closes the connection (recv gives b'' or a reset), or the bound."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


@pytest.fixture
def served(clean_redis: str) -> Iterator[ThreadedServer]:
    opts = uvicorn_options(header_timeout=1.0, keep_alive_timeout=5, max_connections=4)
    with ThreadedServer(create_app(settings_for(clean_redis)), **opts) as srv:
        yield srv


def test_security_headers_everywhere_and_no_server_banner(served: ThreadedServer) -> None:
    for path, headers in (("/api/v1/sites", auth("viewer")), ("/api/v1/sites", {}), ("/nowhere", {}),
                          ("/healthz", {})):
        r = httpx.get(served.url + path, headers=headers, timeout=10)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert "default-src 'none'" in r.headers["content-security-policy"], path
        assert r.headers["referrer-policy"] == "no-referrer", path
        assert "server" not in r.headers, (path, r.headers.get("server"))


def test_the_docs_page_runs_under_its_csp(served: ThreadedServer) -> None:
    r = httpx.get(served.url + "/schema", timeout=10)
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    # every inline script of the page is allowed by its hash, every other script is local
    inline = re.findall(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", r.content, re.S)
    assert inline
    for body in inline:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    for src in re.findall(r'<script src="([^"]+)"', r.text):
        assert src.startswith("/schema/assets/"), src
        assert httpx.get(served.url + src, timeout=10).status_code == 200
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "connect-src 'self'" in csp


def test_deeply_nested_json_is_a_400_not_a_500(client: TestClient) -> None:
    deep = "[" * 5000 + "]" * 5000
    for path, who in (("/api/v1/sites", "admin"), ("/api/v1/jobs", "submitter"), ("/api/v1/tokens", "admin")):
        r = client.post(path, content=deep, headers={**auth(who), "content-type": "application/json"})
        assert r.status_code == 400, (path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "nested too deeply" in r.json()["detail"]
    nested = '{"a":' * 3000 + "{}" + "}" * 3000
    body = '{"project": "m1", "spec": {"executable": "/bin/true", "attributes": {"custom_attributes": ' + nested + "}}}"
    r = client.post("/api/v1/jobs", content=body, headers={**auth("submitter"), "content-type": "application/json"})
    assert r.status_code in (400, 422) and "Traceback" not in r.text


def test_a_silent_connection_is_closed_after_the_header_timeout(served: ThreadedServer) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as idle:
        assert _closed_by_server(idle)
    with socket.create_connection(("127.0.0.1", served.port)) as slow:  # headers never finished
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert _closed_by_server(slow)
    # a normal request on a fresh connection still works
    assert httpx.get(served.url + "/healthz", timeout=10).status_code == 200


def test_connections_beyond_the_cap_are_closed(clean_redis: str) -> None:
    opts = uvicorn_options(header_timeout=60, keep_alive_timeout=60, max_connections=3)
    with ThreadedServer(create_app(settings_for(clean_redis)), **opts) as srv:
        held = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
        try:
            with socket.create_connection(("127.0.0.1", srv.port)) as extra:
                assert _closed_by_server(extra, bound=10)
        finally:
            for s in held:
                s.close()
        # once they are gone, new connections are served again
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(srv.url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
