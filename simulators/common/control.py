"""The ``/_sim`` control API (API.md §3) and the chaos middleware, shared by every simulator."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import JSONBody
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from simulators.common.facility import COMPONENT_STATES, Facility

# (status, message) -> (body bytes, content type) in the facility's own error shape
ErrorBody = Callable[[int, str], tuple[bytes, str]]

_GARBAGE = (
    (b'{"status": "OK", "truncat', "application/json"),
    (b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>", "text/html"),
    (b'{"unexpected": [1, 2, 3], "status": 42}', "application/json"),
)


# marks an answer the chaos switch made up, so spec validation in tests can tell it apart
CHAOS_HEADER = (b"x-sim-chaos", b"1")


class OutageBody(msgspec.Struct, forbid_unknown_fields=True):
    component: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    state: str
    note: str = ""


class ChaosBody(msgspec.Struct, forbid_unknown_fields=True):
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] = 0.0
    error_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    status: Annotated[int, msgspec.Meta(ge=400, le=599)] = 503
    garbage_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    retry_after: Annotated[int, msgspec.Meta(ge=0, le=3600)] | None = None
    # "submit": only job submissions (the facility's submit route) are slowed, failed or held
    only: Literal["", "submit"] = ""
    # the facility does the work at once and holds its answer this long (a job made, the client
    # timed out: the duplicate risk), where latency_ms delays the work itself
    answer_delay_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] = 0.0


class CredentialsBody(msgspec.Struct, forbid_unknown_fields=True):
    valid: bool | None = None  # false: credentials revoked, token endpoint refuses, tokens die
    revoke_tokens: bool = False  # every token issued so far expires now


def control_controller(facility: Facility) -> type[Controller]:
    class SimControl(Controller):
        path = "/_sim"
        include_in_schema = False

        @post("/outage", status_code=200)
        async def outage(self, data: JSONBody[OutageBody]) -> dict[str, Any]:
            if data.state not in COMPONENT_STATES:
                raise HTTPException(status_code=400, detail=f"state must be one of {', '.join(COMPONENT_STATES)}")
            facility.set_component(data.component, data.state, data.note)
            return {"components": facility.components}

        @post("/chaos", status_code=200)
        async def chaos(self, data: JSONBody[ChaosBody]) -> dict[str, Any]:
            c = facility.chaos
            c.latency_ms, c.error_rate, c.status = data.latency_ms, data.error_rate, data.status
            c.garbage_rate, c.retry_after = data.garbage_rate, data.retry_after
            c.only, c.answer_delay_ms = data.only, data.answer_delay_ms
            return msgspec.to_builtins(data)

        @post("/credentials", status_code=200)
        async def credentials(self, data: JSONBody[CredentialsBody]) -> dict[str, Any]:
            if data.valid is not None:
                facility.credentials_valid = data.valid
            if data.revoke_tokens:
                facility.revoke_tokens()
            return {"valid": facility.credentials_valid}

        @get("/jobs")
        async def jobs(self) -> dict[str, Any]:
            return {
                "jobs": [j.as_dict() for sysm in facility.systems.values() for j in sysm.all()],
            }

        @post("/reset", status_code=200)
        async def reset(self) -> dict[str, Any]:
            facility.reset()
            return {"reset": True}

        @get("/health")
        async def health(self) -> dict[str, Any]:
            return {"kind": facility.kind, "components": facility.components}

    return SimControl


class ChaosMiddleware:
    """Latency, errors, garbage and held answers on the protocol endpoints (or on job
    submissions alone); ``/_sim`` is never affected."""

    def __init__(self, app: ASGIApp, facility: Facility, error_body: ErrorBody, submit_path: re.Pattern[str]):
        self.app = app
        self.facility = facility
        self.error_body = error_body
        self.submit_path = submit_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chaos = self.facility.chaos
        if scope["type"] != "http" or not chaos.active or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        if chaos.only == "submit" and not (scope.get("method") == "POST" and self.submit_path.fullmatch(scope["path"])):
            await self.app(scope, receive, send)
            return
        if chaos.latency_ms:
            # a slow facility has the request (body and all) and works on it late, whether or
            # not the client is still waiting: read it now, carry it out after the delay
            request: list[Any] = []
            while not request or request[-1].get("more_body"):
                message = await receive()
                if message["type"] != "http.request":
                    break
                request.append(message)
            await asyncio.sleep(chaos.latency_ms / 1000)
            receive = _replay(request, receive)
        if self.facility.roll_error():
            body, ctype = self.error_body(chaos.status, "Service temporarily unavailable (simulated)")
            headers = [(b"content-type", ctype.encode()), CHAOS_HEADER]
            if chaos.retry_after is not None:
                headers.append((b"retry-after", str(chaos.retry_after).encode()))
            await _send(send, chaos.status, body, headers)
            return
        if self.facility.roll_garbage():
            body, ctype = random.choice(_GARBAGE)
            await _send(send, 200, body, [(b"content-type", ctype.encode()), CHAOS_HEADER])
            return
        if chaos.answer_delay_ms:
            held: list[Any] = []

            async def hold(message: Any) -> None:
                held.append(message)

            await self.app(scope, receive, hold)  # the work is done now
            await asyncio.sleep(chaos.answer_delay_ms / 1000)
            for message in held:
                await send(message)
            return
        await self.app(scope, receive, send)


def _replay(body: list[Any], receive: Receive) -> Receive:
    async def again() -> Any:
        return body.pop(0) if body else await receive()

    return again  # type: ignore[return-value]


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)


def build_sim_app(
    facility: Facility,
    route_handlers: Sequence[Any],
    *,
    error_body: ErrorBody,
    submit_path: str,
    exception_handlers: dict[Any, Any] | None = None,
    **kwargs: Any,
) -> Litestar:
    """A Litestar app with the facility's routes, ``/_sim``, and chaos around everything.
    ``submit_path``: a regular expression for the path of a job submission (a POST), which
    chaos may single out.

    The facility is reachable from handlers as ``request.app.state.facility``."""
    submissions = re.compile(submit_path)

    def chaos_factory(app: ASGIApp) -> ASGIApp:
        return ChaosMiddleware(app, facility, error_body, submissions)

    app = Litestar(
        route_handlers=[*route_handlers, control_controller(facility)],
        middleware=[chaos_factory],
        exception_handlers=exception_handlers or {},
        openapi_config=None,
        debug=False,
        **kwargs,
    )
    app.state.facility = facility
    return app


def facility_of(request: Request[Any, Any, Any]) -> Facility:
    return request.app.state.facility  # type: ignore[no-any-return]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json", headers=headers)
