"""A local NERSC Superfacility API (SF API v1.2) that ``sfapi_client`` works against unmodified.

``create_app(settings)`` builds it; ``superfed sim sfapi --port P`` runs it.
"""

from simulators.sfapi.app import create_app

__all__ = ["create_app"]
