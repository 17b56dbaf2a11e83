"""API tokens: stored by their SHA-256 only, compared by hash lookup (constant time)."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import msgspec
import redis.asyncio as aioredis

from broker.config import TokenConfig
from broker.ratelimit import AUTHENTICATE, WINDOW_SECONDS, Verdict, verdict
from broker.store.autopipe import shared
from broker.store.keys import Keys

log = logging.getLogger(__name__)


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


def new_token_id() -> str:
    return "tok-" + secrets.token_hex(6)


class TokenStore:
    def __init__(self, r: aioredis.Redis, keys: Keys):
        self.r = r
        self.keys = keys
        # every request runs AUTHENTICATE: concurrent requests share round trips (autopipe.py)
        self._pipe = shared(r)
        self._authenticate = self._pipe.script(AUTHENTICATE)

    async def seed(self, tokens: list[TokenConfig]) -> None:
        """Bootstrap tokens from the file (re-written at every start: the file is their source),
        except those an admin revoked."""
        revoked = await self.r.smembers(self.keys.tokens_revoked)
        for t in tokens:
            d = config_token_digest(t)
            if d in revoked:
                continue
            rec = TokenRecord(
                id="cfg-" + d[:12],
                name=t.name,
                role=t.role,
                projects=list(t.projects),
                created_at=time.time(),
                source="config",
            )
            await self.r.hset(self.keys.tokens, d, _enc.encode(rec))

    async def authenticate(self, token: str, limit_per_minute: int) -> tuple[TokenRecord | None, Verdict]:
        """Look the token up, count the request against its rate limit and note its use, in one
        round trip. The record is None for an unknown, revoked or expired token."""
        d = digest(token)
        now = time.time()
        v = verdict(
            await self._pipe.evalsha(
                self._authenticate,
                keys=[self.keys.tokens, self.keys.tokens_last_used, self.keys.rate(d)],
                args=[d, f"{now:.3f}", limit_per_minute, WINDOW_SECONDS],
            )
        )
        if not v.record:
            return None, v
        try:
            rec = _dec.decode(v.record)
        except msgspec.DecodeError:  # a damaged record lets nobody in (and the rest work)
            log.warning("the record of token %s… does not decode; refusing it", d[:8])
            return None, v
        if rec.expires_at is not None and rec.expires_at < now:
            return None, v
        return rec, v

    async def create(
        self, name: str, role: str, projects: list[str], expires_at: float | None = None
    ) -> tuple[str, TokenRecord]:
        """A new token; the secret is returned here and never again (only its hash is kept)."""
        token = new_token()
        rec = TokenRecord(
            id=new_token_id(),
            name=name,
            role=role,
            projects=list(projects),
            created_at=time.time(),
            expires_at=expires_at,
            source="api",
        )
        await self.r.hset(self.keys.tokens, digest(token), _enc.encode(rec))
        return token, rec

    async def all(self) -> list[tuple[TokenRecord, float | None]]:
        """Every token with the time it was last used (None: never), oldest first."""
        async with self.r.pipeline(transaction=False) as p:
            p.hgetall(self.keys.tokens)
            p.hgetall(self.keys.tokens_last_used)
            raw, used = await p.execute()
        out = []
        for d, value in raw.items():
            try:
                rec = _dec.decode(value)
            except msgspec.DecodeError:  # damaged, or another version's: passed over
                continue
            last = used.get(d)
            out.append((rec, float(last) if last else None))
        return sorted(out, key=lambda x: (x[0].created_at, x[0].id))

    async def revoke(self, token_id: str, actor: TokenRecord | None = None) -> tuple[str, TokenRecord | None]:
        """Remove a token by its id; it stops working at the next request on every replica.
        A config-file token is also remembered as revoked so that a restart does not revive it.

        Returns ``("ok", rec)``, ``("missing", None)``, ``("forbidden", rec)`` (the token reaches
        projects ``actor`` does not) or ``("last-admin", rec)`` (no other live admin token for
        every project would remain: nobody could administer the broker any more). The check and
        the removal are one transaction (WATCH), so two admins revoking each other at once
        cannot both win."""
        from redis.exceptions import WatchError

        while True:
            async with self.r.pipeline(transaction=True) as p:
                try:
                    await p.watch(self.keys.tokens)
                    raw = await p.hgetall(self.keys.tokens)
                    records = _decode_all(raw)
                    found = next(((d, rec) for d, rec in records.items() if rec.id == token_id), None)
                    if found is None:
                        return "missing", None
                    d, rec = found
                    if actor is not None and not covers(actor, rec):
                        return "forbidden", rec
                    if is_root_admin(rec) and not any(
                        is_root_admin(o) and o.id != rec.id and live(o) for o in records.values()
                    ):
                        return "last-admin", rec
                    p.multi()
                    p.hdel(self.keys.tokens, d)
                    p.hdel(self.keys.tokens_last_used, d)
                    p.delete(self.keys.rate(d))
                    if rec.source == "config":
                        p.sadd(self.keys.tokens_revoked, d)
                    p.publish(self.keys.token_events, rec.id)  # its open event streams end
                    await p.execute()
                    return "ok", rec
                except WatchError:
                    continue  # a token was made or revoked meanwhile: look again


def _decode_all(raw: dict[Any, Any]) -> dict[str, TokenRecord]:
    out = {}
    for d, value in raw.items():
        try:
            out[str(d)] = _dec.decode(value)
        except msgspec.DecodeError:  # damaged, or another version's: passed over
            continue
    return out


def live(rec: TokenRecord, now: float | None = None) -> bool:
    return rec.expires_at is None or rec.expires_at > (now or time.time())


def is_root_admin(rec: TokenRecord) -> bool:
    """An admin token for every project: the one kind whose last one must not go."""
    return rec.role == "admin" and rec.all_projects


def beyond_reach(actor: TokenRecord, role: str, projects: list[str]) -> str | None:
    """Why ``actor`` may not make (or revoke) a token with this role and these projects, or
    None if it may: a token never reaches a higher role or a project its maker does not."""
    if ROLE_RANK[role] > ROLE_RANK[actor.role]:
        return f"the token {actor.name!r} is {actor.role}; it cannot grant the {role} role"
    if actor.all_projects:
        return None
    if "*" in projects:
        return (f"the token {actor.name!r} is limited to projects {', '.join(actor.projects)}; "
                "it cannot grant every project")
    outside = [p for p in projects if p not in actor.projects]
    if outside:
        return f"the token {actor.name!r} may not act for project(s) {', '.join(outside)}"
    return None


def covers(actor: TokenRecord, rec: TokenRecord) -> bool:
    return beyond_reach(actor, rec.role, rec.projects) is None
