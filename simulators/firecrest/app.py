"""The FirecREST v2 simulator's app: status, compute and filesystem routes, a Keycloak-like
token endpoint at ``/auth/token``, and ``/_sim`` (API.md §3)."""

from __future__ import annotations

from litestar import Litestar

from simulators.common.control import build_sim_app
from simulators.common.facility import SimSettings
from simulators.firecrest import compute, filesystem, staging, status, transfer, tree_ops
from simulators.firecrest.auth import token_endpoint
from simulators.firecrest.errors import EXCEPTION_HANDLERS, chaos_error_body
from simulators.firecrest.state import FirecrestFacility


def create_app(settings: SimSettings) -> Litestar:
    facility = FirecrestFacility(settings)
    routes = [
        token_endpoint,
        *status.ROUTES,
        *compute.ROUTES,
        *filesystem.ROUTES,
        *tree_ops.ROUTES,
        *transfer.ROUTES,
        *staging.ROUTES,
    ]
    return build_sim_app(
        facility, routes, error_body=chaos_error_body, submit_path=r"/compute/[^/]+/jobs",
        exception_handlers=EXCEPTION_HANDLERS,
    )
