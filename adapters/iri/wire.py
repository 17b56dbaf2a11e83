"""The IRI Facility API's JSON shapes as the adapter reads them (lenient: facilities add
fields)."""

from __future__ import annotations

from typing import Any

import msgspec


class WireResource(msgspec.Struct):
    id: str
    name: str | None = None
    resource_type: str = "unknown"
    current_status: str | None = None
    description: str | None = None


class WireIncident(msgspec.Struct):
    id: str
    name: str | None = None
    description: str | None = None
    status: str | None = None
    type: str | None = None
    resolution: str | None = None
    start: str | None = None
    end: str | None = None
    resource_uris: list[str] = []


class WireJobStatus(msgspec.Struct):
    state: str
    time: float | None = None
    message: str | None = None
    exit_code: int | None = None
    meta_data: dict[str, Any] | None = None


class WireJob(msgspec.Struct):
    id: str
    status: WireJobStatus | None = None
    job_spec: dict[str, Any] | None = None


class WireTaskSubmit(msgspec.Struct):
    task_id: str


class WireTask(msgspec.Struct):
    id: str
    status: str = "pending"
    result: dict[str, Any] | None = None


class WireFile(msgspec.Struct):
    name: str
    type: str = "file"
    size: str | int = 0
    last_modified: str | None = None
    permissions: str | None = None


class WireStat(msgspec.Struct):
    size: int


class WireProject(msgspec.Struct):
    id: str
    name: str | None = None


class WireEntry(msgspec.Struct):
    allocation: float
    usage: float
    unit: str


class WireAllocation(msgspec.Struct):
    id: str
    entries: list[WireEntry] = []


class WireProblem(msgspec.Struct):
    type: str = ""
    detail: str | None = None
    title: str | None = None

