"""What the simulated ALCF publishes: its facility, site, resources, queues and capabilities.

Resource UUIDs for Polaris, Eagle and Home are the ones ALCF publishes in its IRI API user
guide (specs/alcf/alcf-user-guide-iri-api.md); other systems get stable UUID5s from their name.
Queue limits follow the Polaris queue table of the ALCF user guide (notes/ANCHORS.md §1.2).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

PUBLISHED_IDS = {
    "polaris": "55c1c993-1124-47f9-b823-514ba3849a9a",
    "eagle": "1c3ad9d4-2e91-42bc-becb-72b1fde1235c",
    "home": "6115bd2c-957a-4543-abff-5fae52992ff2",
}
_NS = uuid.uuid5(uuid.NAMESPACE_DNS, "alcf.anl.gov")

FACILITY_ID = str(uuid.uuid5(_NS, "facility"))
SITE_ID = str(uuid.uuid5(_NS, "site:anl"))

# filesystem resource -> the path prefixes it accepts; the first is canonical
FILESYSTEMS: dict[str, tuple[str, ...]] = {
    "eagle": ("/eagle", "/lus/eagle"),
    "home": ("/home",),
}
# names `custom_attributes.filesystems` may list (Polaris: home, eagle, grand)
KNOWN_FILESYSTEMS = frozenset({"home", "eagle", "grand"})


def resource_id(name: str) -> str:
    return PUBLISHED_IDS.get(name) or str(uuid.uuid5(_NS, f"resource:{name}"))


@dataclass(frozen=True)
class Queue:
    name: str
    min_nodes: int
    max_nodes: int | None  # None: the whole machine
    max_walltime_s: int
    min_walltime_s: int = 0
    # a routing queue's size bands: (up to this many nodes, at most this walltime)
    bands: tuple[tuple[int, int], ...] = ()

    def walltime_limit(self, nodes: int) -> int:
        for most, limit in self.bands:
            if nodes <= most:
                return limit
        return self.max_walltime_s


HOUR = 3600
MIN = 60
# Polaris queues as ALCF publishes them. `prod` is a routing queue (10-496 nodes) to small
# (10-24 nodes, <= 3 h), medium (25-99, <= 6 h) and large (100-496, <= 24 h).
QUEUES: tuple[Queue, ...] = (
    Queue("prod", 10, 496, 24 * HOUR, 5 * MIN, ((24, 3 * HOUR), (99, 6 * HOUR), (496, 24 * HOUR))),
    Queue("debug", 1, 2, 1 * HOUR, 5 * MIN),
    Queue("debug-scaling", 1, 10, 1 * HOUR, 5 * MIN),
    Queue("preemptable", 1, 10, 72 * HOUR),
    Queue("demand", 1, 56, 1 * HOUR),
    Queue("capacity", 1, 4, 168 * HOUR),
)
# with the facility's rules off (protocol tests on a small machine): prod takes any job
RELAXED = {"prod": Queue("prod", 1, None, 24 * HOUR)}
DEFAULT_QUEUE = "prod"
QUEUE_BY_NAME = {q.name: q for q in QUEUES}


def facility_body(base: str, last_modified: str) -> dict[str, object]:
    return {
        "id": FACILITY_ID,
        "name": "Argonne Leadership Computing Facility",
        "short_name": "ALCF",
        "organization_name": "Argonne National Laboratory",
        "support_uri": "https://www.alcf.anl.gov/support-center",
        "description": "Simulated ALCF (superfed)",
        "last_modified": last_modified,
        "self_uri": f"{base}/facility",
        "site_uris": [f"{base}/facility/sites/{SITE_ID}"],
    }


def site_body(base: str, last_modified: str, resource_ids: list[str]) -> dict[str, object]:
    return {
        "id": SITE_ID,
        "name": "Argonne National Laboratory",
        "short_name": "ANL",
        "operating_organization": "UChicago Argonne, LLC",
        "country_name": "United States",
        "locality_name": "Lemont",
        "state_or_province_name": "Illinois",
        "street_address": "9700 S. Cass Avenue",
        "unlocode": "US LMN",
        "altitude": 220.0,
        "latitude": 41.7183,
        "longitude": -87.9786,
        "last_modified": last_modified,
        "self_uri": f"{base}/facility/sites/{SITE_ID}",
        "resource_uris": [f"{base}/status/resources/{rid}" for rid in resource_ids],
    }


def capability_id(resource: str) -> str:
    return f"{resource}-{'storage' if resource in FILESYSTEMS else 'compute'}"
