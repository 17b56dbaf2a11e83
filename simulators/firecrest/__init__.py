"""A simulated CSCS facility speaking FirecREST v2 (``superfed sim firecrest``)."""

from simulators.firecrest.app import create_app

__all__ = ["create_app"]
