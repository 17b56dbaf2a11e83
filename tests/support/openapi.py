"""Validate simulator responses against the facilities' saved OpenAPI specs (openapi-core).

The specs are found through ``tests.support.specs`` (``SUPERFED_SPECS``); a test whose spec is
absent is skipped there.

``ValidatingASGI`` wraps a simulator app: every request/response pair on a path the spec
knows is validated, and failures are collected in ``errors`` for the test to assert empty.
Known spec defects are listed in ``SPEC_EXCEPTIONS`` (one place), each with why.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.support.specs import spec_path

# (spec file name, METHOD, path template, status) -> why the real server differs from its spec.
SPEC_EXCEPTIONS: dict[tuple[str, str, str, int], str] = {
    ("firecrest-v2/openapi-latest.yaml", "GET", "/filesystem/{system_name}/ops/download", 200): (
        "the spec declares application/json with an empty schema; the real server streams the raw "
        "bytes as application/octet-stream (PROTOCOL.md §2.5) and pyfirecrest writes resp.content"
    ),
}


# specs whose own validation fails on a defect that does not touch what we validate with them
UNCHECKED_SPECS: dict[str, str] = {
    "iri/all_spec_v2.yaml": "an example value (0) is below its schema's minimum of 1 (a file size "
    "parameter); every schema is sound (shared/specs/iri/SOURCE.txt)",
}


@functools.cache
def load_spec(relpath: str, server: str = "/") -> OpenAPI:
    raw = yaml.safe_load(spec_path(relpath).read_text())
    raw["servers"] = [{"url": server}]
    config = Config(spec_validator_cls=None) if relpath in UNCHECKED_SPECS else None
    spec = OpenAPI.from_dict(raw, config=config)
    _SPEC_NAMES[id(spec)] = relpath
    return spec


_SPEC_NAMES: dict[int, str] = {}  # id(spec) -> the relpath it was loaded from, for SPEC_EXCEPTIONS


def excepted(spec: OpenAPI, method: str, path: str, status: int) -> str | None:
    """The recorded reason when this (spec, method, path, status) is a known spec defect."""
    rel = _SPEC_NAMES.get(id(spec), "")
    for (fname, m, template, st), why in SPEC_EXCEPTIONS.items():
        # the key names the spec by its relpath ("firecrest-v2/openapi-latest.yaml") or file name
        if fname in (rel, Path(rel).name) and (m.upper(), st) == (method.upper(), status):
            pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template))
            if re.fullmatch(pattern, path):
                return why
    return None


class _Req:
    def __init__(self, scope: dict[str, Any], body: bytes):
        self.host_url = f"http://{dict(scope['headers']).get(b'host', b'localhost').decode()}"
        self.path = scope["path"]
        self.method = scope["method"].lower()
        self.body = body
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.content_type = headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(scope.get("query_string", b"").decode())),
            header=Headers(headers),
            cookie=ImmutableMultiDict({}),
        )
        self.full_url_pattern = self.host_url + self.path


class _Resp:
    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes):
        self.status_code = status
        self.data = body
        h = {k.decode(): v.decode() for k, v in headers}
        self.headers = Headers(h)
        self.content_type = h.get("content-type", "")


class ValidatingASGI:
    def __init__(self, app: Any, spec: OpenAPI, *, skip_prefixes: tuple[str, ...] = ("/_sim",)):
        self.app = app
        self.spec = spec
        self.skip = skip_prefixes
        self.errors: list[str] = []
        self.validated = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip):
            await self.app(scope, receive, send)
            return
        body = b""
        chunks: list[bytes] = []

        async def recv() -> Any:
            msg = await receive()
            if msg["type"] == "http.request":
                chunks.append(msg.get("body", b""))
            return msg

        status = 0
        headers: list[tuple[bytes, bytes]] = []
        out: list[bytes] = []

        async def snd(msg: Any) -> None:
            nonlocal status, headers
            if msg["type"] == "http.response.start":
                status, headers = msg["status"], list(msg.get("headers", []))
            elif msg["type"] == "http.response.body":
                out.append(msg.get("body", b""))
            await send(msg)

        sent_scope = dict(scope)  # the app may rewrite scope["path"] (Litestar strips a trailing /)
        await self.app(scope, recv, snd)
        body = b"".join(chunks)
        req, resp = _Req(sent_scope, body), _Resp(status, headers, b"".join(out))
        if (b"x-sim-chaos", b"1") in headers:
            return  # made up on purpose by /_sim/chaos: not the facility's protocol
        if status == 405:
            return  # a method the spec does not list for the path: it has nothing to check it by
        try:
            self.spec.validate_response(req, resp)
            self.validated += 1
        except Exception as exc:  # collected, asserted by the test
            if excepted(self.spec, scope["method"], scope["path"], status):
                self.validated += 1
                return
            detail = getattr(exc, "__cause__", None) or exc
            self.errors.append(f"{scope['method']} {scope['path']} -> {status}: {type(exc).__name__}: {detail}")
