"""Site kinds and their adapters: plain data, imported lazily, refusing silent overwrites."""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

import httpx
import msgspec

from adapters.base import AdapterBase, SiteAdapter
from adapters.http import HttpSettings
from adapters.profile import Vocabulary

_KNOWN: dict[str, str] = {
    "firecrest": "adapters.firecrest:FirecrestAdapter",
    "iri": "adapters.iri:IriAdapter",
    "sfapi": "adapters.sfapi:SfapiAdapter",
}
assert list(_KNOWN) == sorted(_KNOWN), "keep the registry sorted"
KNOWN_KINDS = MappingProxyType(_KNOWN)
_loaded: dict[str, type[AdapterBase]] = {}


def register(kind: str, dotted: str, *, clobber: bool = False) -> None:
    if kind in _KNOWN and not clobber:
        raise ValueError(f"site kind {kind!r} is already registered as {_KNOWN[kind]}")
    _KNOWN[kind] = dotted
    _loaded.pop(kind, None)


def adapter_class(kind: str) -> type[AdapterBase]:
    try:
        return _loaded[kind]
    except KeyError:
        pass
    try:
        dotted = _KNOWN[kind]
    except KeyError:
        raise ValueError(f"unknown site kind {kind!r}; known: {', '.join(_KNOWN)}") from None
    module, _, attr = dotted.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    _loaded[kind] = cls
    return cls


def vocabulary(kind: str) -> Vocabulary:
    """Where this kind's adapter takes a portable job's queue and node type."""
    return adapter_class(kind).portable


def auth_type(kind: str) -> type[msgspec.Struct]:
    return adapter_class(kind).Auth


def decode_auth(kind: str, raw: Any) -> msgspec.Struct:
    """Validate a site's ``auth`` table against its kind's Auth struct (raises msgspec.ValidationError)."""
    return msgspec.convert(raw, auth_type(kind), strict=False)


def endpoints(kind: str, url: str, auth: Any) -> list[str]:
    """Every URL a ``kind`` adapter for this site would send its credentials to."""
    if not isinstance(auth, msgspec.Struct):
        auth = decode_auth(kind, auth)
    return adapter_class(kind).endpoints(url, auth)


def build(
    kind: str,
    *,
    name: str,
    url: str,
    systems: list[str],
    auth: Any,
    http: HttpSettings | None = None,
    client: httpx.AsyncClient | None = None,
    api_version: str | None = None,
) -> SiteAdapter:
    cls = adapter_class(kind)
    if not isinstance(auth, msgspec.Struct):
        auth = decode_auth(kind, auth)
    extra: dict[str, Any] = {}
    if api_version is not None:  # only kinds that speak several versions take one
        check_api_version(kind, api_version)
        extra["api_version"] = api_version
    # every registered class implements SiteAdapter: checked statically below and by the contract tests
    return cast(
        SiteAdapter, cls(name=name, url=url, systems=systems, auth=auth, http=http, client=client, **extra)
    )


def check_api_version(kind: str, api_version: str) -> None:
    """Raises ValueError naming the versions ``kind`` speaks (none: the kind has only one)."""
    versions = adapter_class(kind).API_VERSIONS
    if api_version not in versions:
        if not versions:
            raise ValueError(f"{kind} sites speak one API version; leave api_version out")
        raise ValueError(f"{kind} sites speak {' or '.join(versions)}, not {api_version!r}")


if TYPE_CHECKING:  # mypy proves each adapter implements the whole SiteAdapter protocol
    from adapters.firecrest import FirecrestAdapter
    from adapters.iri import IriAdapter
    from adapters.sfapi import SfapiAdapter

    _IMPLEMENTS: tuple[type[SiteAdapter], ...] = (FirecrestAdapter, IriAdapter, SfapiAdapter)
