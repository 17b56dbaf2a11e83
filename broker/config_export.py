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

from broker.config import Settings, validate
from broker.store.connect import sync_client
from broker.store.keys import Keys
from broker.store.sites import StoredSite
from broker.store.tokens import digest
from broker.toml_out import dumps

_site_dec = msgspec.json.Decoder(StoredSite)


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
