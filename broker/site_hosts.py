"""Where the broker may send requests (and credentials): site URLs against the operator's
allowed hosts, and never to link-local or cloud-metadata addresses (SSRF).

Pure checks on a URL's host (``url_problem``) run when a site is validated (config file and
admin API alike); ``resolved_problem`` also resolves a host name, and runs when the adapter
for a site is built, so a name that points at a metadata address is refused too."""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from urllib.parse import urlsplit

# cloud metadata services: by address (they are link-local, or these) and by name
_METADATA_ADDRESSES = {ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254",
                                                           "100.100.100.200")}
_METADATA_NAMES = {"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                   "instance-data.ec2.internal"}


def _bad_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    mapped = getattr(addr, "ipv4_mapped", None)
    if mapped is not None:
        addr = mapped
    if addr in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if addr.is_link_local:
        return "a link-local address (169.254.0.0/16, fe80::/10)"
    if addr.is_unspecified or addr.is_multicast:
        return "not a host address"
    return None


def host_allowed(host: str, allowed: list[str]) -> bool:
    """``allowed`` empty: any host; else an exact name or address, or a pattern like
    ``*.nersc.gov``."""
    if not allowed:
        return True
    host = host.lower().rstrip(".")
    return any(fnmatch.fnmatchcase(host, pattern.lower().rstrip(".")) for pattern in allowed)


def url_problem(url: str, allowed: list[str]) -> str | None:
    """Why the broker must not send requests to ``url`` (None: it may). No DNS."""
    try:
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return "is not a URL"
    if not host:
        return "has no host"
    if host in _METADATA_NAMES:
        return f"names {host}, a cloud metadata service"
    try:
        why = _bad_address(ipaddress.ip_address(host))
    except ValueError:
        why = None
    if why:
        return f"points at {host}, {why}"
    if not host_allowed(host, allowed):
        return f"names host {host}, which is not in allowed_site_hosts ({', '.join(allowed)})"
    return None


def resolved_problem(url: str, allowed: list[str]) -> str | None:
    """``url_problem`` plus every address the host name resolves to (an unresolvable name is
    left to fail at connect time)."""
    why = url_problem(url, allowed)
    if why:
        return why
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        try:
            addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        except ValueError:
            continue
        bad = _bad_address(addr)
        if bad:
            return f"names host {host}, which resolves to {addr}, {bad}"
    return None
