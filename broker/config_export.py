"""``superfed config export``: the live configuration written back as a config file.

Sites come from Redis (where admins change them at run time); everything else comes from the
file the broker was started with. Bootstrap tokens given in clear (``token = ...``) are written
as their SHA-256, which works the same and keeps the secret out of the exported file; tokens
made through the API live in Redis only and are not exported. The result is checked by reading
it back with the same validator ``superfed config check`` uses."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from typing import Any

import msgspec
import tomli_w

from broker.config import Settings, validate
from broker.store.connect import sync_client
from broker.store.keys import Keys
from broker.store.sites import StoredSite
from broker.store.tokens import digest

_site_dec = msgspec.json.Decoder(StoredSite)


def _without_none(v: Any) -> Any:
    """TOML has no null: a key whose value is None is left out (it means "the default")."""
    if isinstance(v, dict):
        return {k: _without_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list | tuple):
        return [_without_none(x) for x in v if x is not None]
    return v


def dumps(data: dict[str, Any], header: str = "") -> str:
    """``data`` as a TOML document (``tomli-w``), ``header`` as leading comment lines."""
    comments = "".join(f"# {line}\n" for line in header.splitlines())
    return comments + ("\n" if comments else "") + tomli_w.dumps(_without_none(data))


def live_sites(settings: Settings) -> list[StoredSite]:
    r = sync_client(settings.redis_url, decode=True)
    try:
        raw = r.hgetall(Keys(settings.namespace).sites)
    finally:
        r.close()
    return sorted((_site_dec.decode(v) for v in raw.values()), key=lambda s: s.config.name)


def _token(t: dict[str, Any]) -> dict[str, Any]:
    if t.get("token"):
        t = {**t, "sha256": digest(t["token"]), "token": None}
    return t


def render(settings: Settings, sites: list[StoredSite]) -> str:
    data = msgspec.to_builtins(settings)
    data.pop("source", None)
    if data.get("redis_url_file"):
        data.pop("redis_url", None)  # read from that file (it holds a password): not copied out
    data["tokens"] = [_token(t) for t in data.get("tokens", [])]
    data["sites"] = [msgspec.to_builtins(s.config) for s in sites]
    revisions = ", ".join(f"{s.config.name}@{s.revision}" for s in sites) or "none"
    header = (f"superfed configuration exported {datetime.now(UTC).isoformat(timespec='seconds')}\n"
              f"from {settings.source or 'the running settings'} and Redis (sites: {revisions})")
    text = dumps(data, header=header)
    validate(tomllib.loads(text))  # what we write, we can read: raises ConfigError otherwise
    return text


def export(settings: Settings) -> str:
    return render(settings, live_sites(settings))
