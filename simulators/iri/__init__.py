"""A simulated ALCF speaking the DOE IRI Facility API v1 (``/api/v1``, as ALCF does) and v2
(``/api/v2``, as the reference implementation does) over PBS Pro semantics.

v2 differs where its spec does: resource types and allocation units are URNs, filesystem
reads are POST with a JSON body (``routes_files_v2``), and job submission honours
``Idempotency-Key`` (``routes_compute.idempotent``).

``create_app(settings)`` is what ``superfed sim iri`` runs.  Static bearer tokens from
``settings.static_tokens`` are accepted (ALCF's are Globus tokens the client brings).
"""

from __future__ import annotations

import dataclasses

from litestar import Litestar

from simulators.common.control import build_sim_app
from simulators.common.facility import SimSettings
from simulators.common.scheduler import Partition
from simulators.iri import (
    catalog,
    routes_account,
    routes_compute,
    routes_files,
    routes_files_v2,
    routes_sim,
    routes_status,
)
from simulators.iri.problems import EXCEPTION_HANDLERS, error_body
from simulators.iri.state import IriFacility

__all__ = ["IriFacility", "create_app"]


def alcf_partitions(nodes: int) -> list[Partition]:
    return [
        Partition(
            q.name, min(q.max_nodes or nodes, nodes), q.max_walltime_s, min(3600, q.max_walltime_s)
        )
        for q in catalog.QUEUES
    ]


def create_app(settings: SimSettings, versions: tuple[str, ...] = ("v1", "v2")) -> Litestar:
    """``versions``: the API versions served; ``("v1",)`` is a facility like ALCF today."""
    # ALCF's queues, whatever partitions were asked for: the IRI checks speak of these names
    settings = dataclasses.replace(settings, partitions=alcf_partitions(settings.nodes))
    facility = IriFacility(settings, versions)
    routes = [
        *routes_status.ROUTES,
        *routes_account.ROUTES,
        *routes_compute.ROUTES,
        *routes_files.ROUTES,
        *routes_files_v2.ROUTES,
        *routes_sim.ROUTES,
    ]
    return build_sim_app(
        facility, routes, error_body=error_body, submit_path=r"/api/v[12]/compute/job/[^/]+",
        exception_handlers=EXCEPTION_HANDLERS,
    )
