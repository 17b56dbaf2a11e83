"""FirecREST v2's JSON shapes as the adapter reads them (lenient: servers add fields)."""

from __future__ import annotations

import msgspec


class WireToken(msgspec.Struct):
    access_token: str
    expires_in: float | None = None


class WireServiceHealth(msgspec.Struct):  # field names are the wire's camelCase
    serviceType: str
    healthy: bool | None = None
    latency: float | None = None
    message: str | None = None
    path: str | None = None
    lastChecked: str | None = None


class WireSystem(msgspec.Struct):
    name: str
    servicesHealth: list[WireServiceHealth] | None = None


class WireSystems(msgspec.Struct):
    systems: list[WireSystem]


class WireJobStatus(msgspec.Struct):
    state: str | list[str]
    stateReason: str | None = None
    exitCode: int | None = None


class WireJob(msgspec.Struct):
    jobId: str
    status: WireJobStatus
    name: str = ""
    comment: str | None = None  # not in 2.5.6's JobModel; read if a server sends it


class WireJobs(msgspec.Struct):
    jobs: list[WireJob] | None  # the key is always there; null when there are none


class WireSubmitted(msgspec.Struct):
    jobId: str | int  # a string on the wire; pyfirecrest's own fixtures use an int


class WireFile(msgspec.Struct):
    name: str
    type: str
    size: str | int = 0
    lastModified: str | None = None
    permissions: str | None = None


class WireLs(msgspec.Struct):
    output: list[WireFile] | None


class WireStat(msgspec.Struct):
    size: int


class WireStatOut(msgspec.Struct):
    output: WireStat




class WireAccount(msgspec.Struct):
    name: str


class WireUserInfo(msgspec.Struct):  # GET /status/{system}/userinfo; accounts: what the user may charge
    accounts: list[WireAccount] = []
