"""NERSC Superfacility API (SF API v1.2) adapter: ``adapters.sfapi:SfapiAdapter``."""

from adapters.sfapi.adapter import SfapiAdapter
from adapters.sfapi.auth import Auth
from adapters.sfapi.translate import ERROR_RULES, HEALTH_MAP, classify

__all__ = ["ERROR_RULES", "HEALTH_MAP", "Auth", "SfapiAdapter", "classify"]
