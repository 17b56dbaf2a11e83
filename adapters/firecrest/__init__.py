"""CSCS FirecREST v2 adapter: ``adapters.firecrest:FirecrestAdapter``.

``wire`` holds the JSON shapes, ``translate`` the tables and pure build/parse functions,
``auth`` the credentials struct, ``adapter`` the class that does the I/O.
"""

from adapters.firecrest.adapter import FirecrestAdapter
from adapters.firecrest.auth import Auth
from adapters.firecrest.translate import (
    FILE_TYPES,
    HEALTH_MAP,
    PBS_STATES,
    SERVICE_COMPONENT,
    SLOW_CHECK_S,
    build_submit_body,
    file_entry,
    health_word,
    job_status,
    parse_health,
    psij_state,
    tag_of,
)
from adapters.firecrest.wire import WireFile, WireJob, WireSystems

__all__ = [
    "FILE_TYPES",
    "HEALTH_MAP",
    "PBS_STATES",
    "SERVICE_COMPONENT",
    "SLOW_CHECK_S",
    "Auth",
    "FirecrestAdapter",
    "WireFile",
    "WireJob",
    "WireSystems",
    "build_submit_body",
    "file_entry",
    "health_word",
    "job_status",
    "parse_health",
    "psij_state",
    "tag_of",
]
