"""DOE IRI Facility API adapter: ``adapters.iri:IriAdapter``.

``wire`` holds the JSON shapes, ``translate`` the tables and pure build/parse functions,
``auth`` the credentials struct, ``adapter`` the class that does the I/O.
"""

from adapters.iri.adapter import IriAdapter
from adapters.iri.auth import Auth
from adapters.iri.translate import (
    FILE_TYPES,
    HEALTH_MAP,
    STATE_MAP,
    TASK_FINAL,
    build_job,
    file_entry,
    filesystem_name,
    health_state,
    job_name,
    parse_health,
    parse_status,
    psij_state,
    task_error,
)
from adapters.iri.wire import WireFile, WireIncident, WireJob, WireResource, WireTask
from adapters.tags import tag_from_name

__all__ = [
    "FILE_TYPES",
    "HEALTH_MAP",
    "STATE_MAP",
    "TASK_FINAL",
    "Auth",
    "IriAdapter",
    "WireFile",
    "WireIncident",
    "WireJob",
    "WireResource",
    "WireTask",
    "build_job",
    "file_entry",
    "filesystem_name",
    "health_state",
    "job_name",
    "parse_health",
    "parse_status",
    "psij_state",
    "tag_from_name",
    "task_error",
]
