"""The audit log: who changed what, when, with the before and after (secrets redacted).

A capped Redis list, newest first, shared by every replica. Everything written here passes
through ``redact`` first, so a secret someone put where it does not belong still never lands
in the log."""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec
import redis.asyncio as aioredis

from broker.store.keys import Keys

REDACTED = "[redacted]"

# key names that hold (or might hold) a secret ...
_SECRET_KEY = re.compile(r"secret|passw|token|private|credential|api[-_]?key|\Akey\Z|_key\Z|auth", re.I)
# ... unless they only *name* where a secret lives, or are plainly not secret
_SAFE_KEY = re.compile(r"(_file|_env|_credential|_url|_id|_ttl|_name)\Z|\Aauth\Z", re.I)
# userinfo in a URL: scheme://user:password@host
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):([^/@\s]*)@")


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with every secret-looking entry replaced by ``[redacted]``."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if key and _SECRET_KEY.search(key) and not _SAFE_KEY.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str) and "://" in value:
        return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)
    return value


class AuditEntry(msgspec.Struct, omit_defaults=True):
    at: float
    actor: str  # the token's name
    actor_id: str  # the token's id
    action: str  # site.create|replace|delete|drain|enable, token.create|revoke, file.write, job.cancel
    target: str  # the site's name, the token's id, site:path, or the job's id
    before: Any = None
    after: Any = None


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(AuditEntry)


class AuditLog:
    def __init__(self, r: aioredis.Redis, keys: Keys, max_entries: int = 10_000):
        self.r = r
        self.keys = keys
        self.max_entries = max_entries

    async def record(
        self, actor: str, actor_id: str, action: str, target: str, before: Any = None, after: Any = None
    ) -> AuditEntry:
        entry = AuditEntry(
            at=time.time(),
            actor=actor,
            actor_id=actor_id,
            action=action,
            target=target,
            before=redact(to_plain(before)),
            after=redact(to_plain(after)),
        )
        async with self.r.pipeline(transaction=True) as p:
            p.lpush(self.keys.audit, _enc.encode(entry))
            p.ltrim(self.keys.audit, 0, self.max_entries - 1)
            await p.execute()
        return entry

    async def recent(self, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
        raw = await self.r.lrange(self.keys.audit, offset, offset + limit - 1)
        out = []
        for item in raw:
            try:
                out.append(_dec.decode(item))
            except msgspec.ValidationError:
                continue
        return out

    async def count(self) -> int:
        return int(await self.r.llen(self.keys.audit))


def to_plain(value: Any) -> Any:
    return None if value is None else msgspec.to_builtins(value)
