"""API tokens: stored by their SHA-256 only, compared by hash lookup (constant time)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path

import msgspec
import redis.asyncio as aioredis

from broker.config import TokenConfig
from broker.store.keys import Keys


class TokenRecord(msgspec.Struct):
    id: str
    name: str
    role: str
    projects: list[str]
    created_at: float
    expires_at: float | None = None
    source: str = "api"  # "config" for bootstrap tokens from the file

    def may_see(self, project: str) -> bool:
        return "*" in self.projects or project in self.projects

    @property
    def all_projects(self) -> bool:
        return "*" in self.projects


ROLE_RANK = {"viewer": 0, "submitter": 1, "admin": 2}

_dec = msgspec.json.Decoder(TokenRecord)
_enc = msgspec.json.Encoder()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "sf_" + secrets.token_urlsafe(32)


def config_token_digest(t: TokenConfig) -> str:
    if t.sha256:
        return t.sha256
    if t.token:
        return digest(t.token)
    if t.file:
        return digest(Path(t.file).expanduser().read_text().strip())
    import os

    value = os.environ.get(t.env or "")
    if not value:
        raise ValueError(f"token {t.name!r}: environment variable {t.env!r} is not set")
    return digest(value.strip())


class TokenStore:
    def __init__(self, r: aioredis.Redis, keys: Keys):
        self.r = r
        self.keys = keys

    async def seed(self, tokens: list[TokenConfig]) -> None:
        """Bootstrap tokens from the file (re-written at every start: the file is their source)."""
        for t in tokens:
            d = config_token_digest(t)
            rec = TokenRecord(id="cfg-" + d[:12], name=t.name, role=t.role, projects=list(t.projects),
                              created_at=time.time(), source="config")
            await self.r.hset(self.keys.tokens, d, _enc.encode(rec))

    async def lookup(self, token: str) -> TokenRecord | None:
        # The lookup is by digest, so timing reveals nothing about the secret; the compare
        # below guards against a hash-table collision ever matching a different token.
        d = digest(token)
        raw = await self.r.hget(self.keys.tokens, d)
        if raw is None or not hmac.compare_digest(d, digest(token)):
            return None
        rec = _dec.decode(raw)
        if rec.expires_at is not None and rec.expires_at < time.time():
            return None
        return rec
