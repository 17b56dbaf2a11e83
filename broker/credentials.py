"""Credentials bound to the hosts they may be sent to.

The operator declares every credential source in the config file, by name, with the hosts
that may receive it::

    [credentials.nersc-key]
    file = "/etc/superfed/nersc.pem"     # or env = "SUPERFED_NERSC_KEY"
    hosts = ["api.nersc.gov", "oidc.nersc.gov"]

A site's ``auth`` names one as ``<field>_credential = "nersc-key"`` (for ``private_key_file``
/ ``private_key_env``: ``private_key_credential``). The admin API accepts only such names, so an
admin can neither point a site at an arbitrary file or variable on the broker's host nor send a
declared credential to a host of their choosing: every URL the site's adapter would send it to
(``adapters.registry.endpoints``: the API and its token endpoint) must name one of its hosts.

In the config file a site may still give ``<field>_file`` / ``<field>_env`` directly: that is
the operator's own declaration, so it becomes a credential named ``<site>.<field>`` bound to
that site's hosts as written (``declare_inline``). What is stored in Redis, shown by the API
and exported names credentials only.

These are pure functions; the broker resolves names into ``_file`` / ``_env`` (what the
adapters read) only when it builds an adapter (``broker/adapter_pool.py``) and checks the
hosts again there.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from adapters import registry
from broker.site_hosts import host_allowed

REF = "_credential"
SOURCES = ("_file", "_env")

CredentialName = Annotated[
    str,
    msgspec.Meta(pattern=r"^[a-z][a-z0-9._-]{0,63}$(?!\n)",
                 description="lower-case letters, digits, '.', '_' or '-'; starts with a letter"),
]


class CredentialSource(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Where a secret is read (exactly one of ``file``, ``env``) and the hosts it may go to
    (exact names or addresses, or patterns such as ``*.cscs.ch``)."""

    # a pattern may only widen the first label ("*.cscs.ch"): a bare "*" would unbind the credential
    hosts: Annotated[
        list[Annotated[str, msgspec.Meta(pattern=r"^(\*\.)?[A-Za-z0-9.:\[\]-]{1,253}$(?!\n)",
                                         description="a host name or address, or *.domain")]],
        msgspec.Meta(min_length=1)]
    file: str | None = None
    env: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$(?!\n)")] | None = None

    def __post_init__(self) -> None:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of file or env")


Credentials = dict[str, CredentialSource]


def source_fields(auth: dict[str, Any]) -> list[str]:
    """The auth keys that name a file or a variable directly (``token_file``, ``client_secret_env``)."""
    return [k for k in auth if k.endswith(SOURCES)]


def _base(key: str) -> str:
    for suffix in (REF, *SOURCES):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def resolve(auth: dict[str, Any], credentials: Credentials, place: str = "auth") -> tuple[dict[str, Any], list[str]]:
    """``auth`` with each ``<field>_credential`` replaced by the ``<field>_file`` or
    ``<field>_env`` it names, and the problems (unknown names)."""
    out: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in auth.items():
        if not key.endswith(REF):
            out[key] = value
            continue
        cred = credentials.get(value) if isinstance(value, str) else None
        if cred is None:
            known = ", ".join(sorted(credentials)) or "none are declared"
            problems.append(f"{place}.{key}: no credential named {value!r} is declared in the config file "
                            f"([credentials.NAME]; declared: {known})")
            continue
        field = _base(key)
        if f"{field}_file" in auth or f"{field}_env" in auth:
            problems.append(f"{place}.{key}: give either {key} or {field}_file/{field}_env, not both")
        if cred.file is not None:
            out[f"{field}_file"] = cred.file
        else:
            out[f"{field}_env"] = cred.env
    return out, problems


def binding_problems(kind: str, url: str, auth: dict[str, Any], credentials: Credentials,
                     place: str = "auth") -> list[str]:
    """Why the credentials ``auth`` names must not be sent where this site would send them:
    every host of every endpoint must be among each credential's hosts. ``auth`` is the stored
    form (names); an undecodable auth is left to the site's own validation."""
    names = {k: v for k, v in auth.items() if k.endswith(REF) and isinstance(v, str) and v in credentials}
    if not names:
        return []
    resolved, _ = resolve(auth, credentials, place)
    try:
        urls = registry.endpoints(kind, url, resolved)
    except (msgspec.ValidationError, ValueError):
        return []
    problems = []
    for key, name in names.items():
        allowed = credentials[name].hosts
        for endpoint in urls:
            host = (urlsplit(endpoint).hostname or "").lower()
            if not host_allowed(host, allowed):
                problems.append(f"{place}.{key}: credential {name!r} may be sent only to {', '.join(allowed)}; "
                                f"this site would send it to {host or endpoint!r}")
                break
    return problems


def declare_inline(site: str, kind: str, url: str, auth: dict[str, Any]) -> tuple[dict[str, Any], Credentials]:
    """A config-file site's ``<field>_file`` / ``<field>_env`` as credentials named
    ``<site>.<field>``, bound to the hosts this site sends them to; returns the auth naming
    them and the new credentials. ``auth`` must already be valid for ``kind``."""
    fields = source_fields(auth)
    if not fields:
        return auth, {}
    hosts = sorted({(urlsplit(u).hostname or "").lower() for u in registry.endpoints(kind, url, auth)} - {""})
    out = {k: v for k, v in auth.items() if k not in fields}
    declared: Credentials = {}
    for key in fields:
        field = _base(key)
        name = f"{site}.{field}"
        source = {"file": auth[key]} if key.endswith("_file") else {"env": auth[key]}
        declared[name] = CredentialSource(hosts=hosts, **source)
        out[f"{field}{REF}"] = name
    return out, declared
