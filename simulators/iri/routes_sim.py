"""``/_sim/iri``: the IRI simulator's own switches (``state.Quirks``), beside the common
``/_sim`` controls.  Tests use them to be a facility that differs from the spec."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from litestar import Request, get, post

from simulators.iri.common import fac, read_json


class QuirksBody(msgspec.Struct, forbid_unknown_fields=True):
    ignore_job_filter: bool = False
    page_cap: int | None = None
    hold_submissions: bool = False
    allocation_unit: str | None = None
    no_idempotency_store: bool = False


def _view(request: Request[Any, Any, Any]) -> dict[str, Any]:
    f = fac(request)
    return {
        **dataclasses.asdict(f.quirks),
        "in_flight": sum(1 for r in f.replays.values() if not r.done),
    }


@post("/_sim/iri", status_code=200)
async def set_quirks(request: Request[Any, Any, Any]) -> dict[str, Any]:
    f = fac(request)
    body = read_json(await request.body(), QuirksBody)
    f.quirks = type(f.quirks)(**msgspec.structs.asdict(body))
    if body.hold_submissions:
        f.held.clear()
    else:
        f.held.set()
    return _view(request)


@get("/_sim/iri", sync_to_thread=False)
def get_quirks(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _view(request)


ROUTES = [set_quirks, get_quirks]
