"""What differs between IRI Facility API v1 and v2, as tables and pure functions.

v2 (``/api/v2``, spec ``all_spec_v2.yaml``) writes resource types and allocation units as DOE
IRI URNs (``urn:doe-iri:<domain>:<nss>``; the reference implementation's ``ResourceType`` and
``AllocationUnit`` in ``app/types/scalars.py``), takes filesystem operations as POST with a
JSON body (GET is 405 there), and honours ``Idempotency-Key`` on job submission.  v1 (ALCF)
keeps the words.  Everything here reads both, so a facility half-way between is understood.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Literal

ApiVersion = Literal["v1", "v2"]
API_VERSIONS: tuple[ApiVersion, ...] = ("v1", "v2")
API_PATH = re.compile(r"/api/(v[12])/?$")  # a site URL may name its version itself

# v2 resource_type URN -> the v1 word the adapter groups by.  A subtype URN
# (``urn:doe-iri:resource:compute:system``) takes its parent's word; see resource_kind.
RESOURCE_TYPE_URNS: dict[str, str] = {
    "urn:doe-iri:resource:compute": "compute",
    "urn:doe-iri:resource:storage": "storage",
    "urn:doe-iri:resource:system": "system",
    "urn:doe-iri:resource:network": "network",
    "urn:doe-iri:resource:unknown": "unknown",
    "urn:doe-iri:service:generic": "service",
    "urn:doe-iri:service:website": "website",
}
V1_RESOURCE_TYPES = frozenset(
    {"website", "service", "compute", "system", "storage", "network", "unknown"}
)

# AllocationEntry.unit, v1 word or v2 URN -> the broker's unit.  Anything else is "unknown":
# never read as zero node hours (a facility's own unit, e.g. GPU hours, is not ours to guess).
ALLOCATION_UNITS: dict[str, str] = {
    "node_hours": "node_hours",
    "bytes": "bytes",
    "inodes": "inodes",
    "urn:doe-iri:allocation:compute:node-hours": "node_hours",
    "urn:doe-iri:allocation:storage:bytes": "bytes",
    "urn:doe-iri:allocation:storage:inodes": "inodes",
}

# Read-only filesystem operations: v1 sends their arguments as a query (GET), v2 as a JSON
# body (POST).  Writing operations (upload) are POST in both.
READ_OPS = frozenset({"ls", "stat", "download", "head", "tail", "view", "checksum", "file"})

# Idempotency-Key namespace: the key is a UUID (the spec asks for a client-generated UUID)
# made from the broker's job, the system and the attempt, so a retry sends the same key.
IDEMPOTENCY_NS = uuid.UUID("5b0c5e0e-6d3e-5f8e-9a41-3f4b2c1d7a10")
_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def resource_kind(resource_type: str | None) -> str:
    """A v1 word, or a v2 URN or subtype URN, as the v1 word; "unknown" otherwise."""
    value = (resource_type or "").strip()
    if not value.startswith("urn:"):
        return value.lower() if value.lower() in V1_RESOURCE_TYPES else "unknown"
    parts = value.split(":")
    for n in range(len(parts), 3, -1):  # the longest registered prefix wins
        word = RESOURCE_TYPE_URNS.get(":".join(parts[:n]))
        if word is not None:
            return word
    return "unknown"


def allocation_unit(unit: str | None) -> str | None:
    """The broker's unit for a v1 word or v2 URN, or None when it is not one we know."""
    return ALLOCATION_UNITS.get((unit or "").strip())


def idempotency_key(tag: str, system: str, attempt: int) -> str:
    """The same job, system and attempt give the same key, whichever worker sends it."""
    return str(uuid.uuid5(IDEMPOTENCY_NS, f"{tag}\x1f{system}\x1f{attempt}"))


def fs_request(version: ApiVersion, op: str, path: str, **args: bool | int | str) -> dict[str, object]:
    """httpx arguments (method, params or json) for a read-only filesystem operation."""
    if version == "v2":
        return {"method": "POST", "json": {"path": path, **args}}
    query: dict[str, str] = {"path": path}
    for key, value in args.items():
        query[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return {"method": "GET", "params": query}


def file_bytes(output: str, encoding: str | None, size: int | None) -> bytes:
    """A download task's ``output`` as the file's bytes.

    ALCF and our v1 simulator say ``"encoding": "base64"``; the reference implementation's v2
    server sends base64 with no ``encoding`` key (its download model is a bare string).  So
    without the key, the string is base64 when it is well-formed base64 whose decoded length is
    the size ``stat`` reported (text of that exact shape and length cannot be confused: base64
    is 4/3 as long), and text otherwise.  Without a size, well-formed base64 is taken as such.
    """
    if encoding is not None:
        if encoding.lower() == "base64":
            return base64.b64decode(output)
        return output.encode()
    text = output.encode()
    compact = "".join(output.split())  # base64 may arrive wrapped in lines
    if len(compact) % 4 == 0 and _B64.match(compact):
        try:
            decoded = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            return text
        if size is None or len(decoded) == size:
            return decoded
    return text
