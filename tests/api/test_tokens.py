"""API tokens through the admin API over a real Redis: shown once, stored hashed, listed
without the secret, revoked at once (on every replica), expired, config tokens stay revoked."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from litestar.testing import TestClient

from broker.app import create_app
from tests.api.conftest import TOKENS, auth, settings_for


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_create_shows_the_secret_once_and_stores_only_its_hash(client: TestClient, clean_redis: str) -> None:
    r = client.post("/api/v1/tokens", json={"name": "beamline-7", "role": "submitter", "projects": ["m1", "m2"]},
                    headers=auth("admin"))
    assert r.status_code == 201, r.text
    made = r.json()
    secret = made["token"]
    assert made["id"] and made["name"] == "beamline-7" and made["role"] == "submitter"
    assert made["projects"] == ["m1", "m2"] and made["expires_at"] is None
    assert r.headers["cache-control"] == "no-store"
    # it works, for what its role and projects allow
    assert client.get("/api/v1/jobs", headers=_bearer(secret)).status_code == 200
    spec = {"executable": "/bin/true", "resources": {"node_count": 1}}
    assert client.post("/api/v1/jobs", json={"project": "m2", "spec": spec}, headers=_bearer(secret)).status_code == 202
    assert client.post("/api/v1/jobs", json={"project": "m3", "spec": spec}, headers=_bearer(secret)).status_code == 403
    assert client.get("/api/v1/tokens", headers=_bearer(secret)).status_code == 403
    # never stored, never listed: only its SHA-256
    r_ = redis.Redis.from_url(clean_redis)
    hashes = [k for k in r_.keys("*") if r_.type(k) == b"hash"]
    dump = b"".join(k + b"".join(r_.hgetall(k).values()) for k in hashes) + b"".join(r_.keys("*"))
    assert secret.encode() not in dump
    assert r_.hexists("superfed:tokens", hashlib.sha256(secret.encode()).hexdigest())
    listing = client.get("/api/v1/tokens", headers=auth("admin"))
    assert listing.status_code == 200 and secret not in listing.text
    mine = next(t for t in listing.json() if t["id"] == made["id"])
    assert set(mine) == {"id", "name", "role", "projects", "created_at", "expires_at", "last_used_at", "source"}
    assert mine["last_used_at"] is not None and mine["source"] == "api"
    assert all("token" not in t for t in listing.json())


def test_last_used_is_written_at_most_once_a_minute(client: TestClient, clean_redis: str) -> None:
    secret = client.post("/api/v1/tokens", json={"name": "t", "role": "viewer"}, headers=auth("admin")).json()["token"]
    d = hashlib.sha256(secret.encode()).hexdigest()
    r_ = redis.Redis.from_url(clean_redis)
    assert r_.hget("superfed:tokens:last_used", d) is None  # never used yet
    before = time.time()
    client.get("/api/v1/sites", headers=_bearer(secret))
    first = r_.hget("superfed:tokens:last_used", d)
    assert first is not None and before <= float(first) <= time.time()  # when it was used, on any machine
    for _ in range(5):
        client.get("/api/v1/sites", headers=_bearer(secret))
    assert r_.hget("superfed:tokens:last_used", d) == first


def test_revoke_works_at_once_on_every_replica(clean_redis: str) -> None:
    settings = settings_for(clean_redis)
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        made = one.post("/api/v1/tokens", json={"name": "short-lived", "role": "viewer"}, headers=auth("admin")).json()
        assert two.get("/api/v1/sites", headers=_bearer(made["token"])).status_code == 200
        r = one.delete(f"/api/v1/tokens/{made['id']}", headers=auth("admin"))
        assert r.status_code == 204
        gone = two.get("/api/v1/sites", headers=_bearer(made["token"]))
        assert gone.status_code == 401 and gone.headers["content-type"].startswith("application/problem+json")
        assert one.delete(f"/api/v1/tokens/{made['id']}", headers=auth("admin")).status_code == 404
        assert made["id"] not in one.get("/api/v1/tokens", headers=auth("admin")).text


def test_expiry(client: TestClient) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    made = client.post("/api/v1/tokens", json={"name": "e", "role": "viewer", "expires_at": soon},
                       headers=auth("admin")).json()
    assert made["expires_at"] is not None
    assert client.get("/api/v1/sites", headers=_bearer(made["token"])).status_code == 200
    time.sleep(1.7)
    assert client.get("/api/v1/sites", headers=_bearer(made["token"])).status_code == 401


def test_bad_token_requests_name_the_field(client: TestClient) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    cases = [
        ({"name": "x", "role": "owner"}, "role"),
        ({"role": "viewer"}, "name"),
        ({"name": "x", "role": "viewer", "projects": []}, "projects"),
        ({"name": "x", "role": "viewer", "expires_at": past}, "expires_at"),
        ({"name": "x", "role": "viewer", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # no time zone
        ({"name": "x", "role": "viewer", "token": "choose-my-own"}, "token"),
    ]
    for body, word in cases:
        r = client.post("/api/v1/tokens", json=body, headers=auth("admin"))
        assert r.status_code in (400, 422), (body, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert word in r.text, (word, r.text)


def test_a_revoked_config_token_stays_revoked_after_a_restart(clean_redis: str) -> None:
    settings = settings_for(clean_redis)
    with TestClient(create_app(settings)) as c:
        listing = c.get("/api/v1/tokens", headers=auth("admin")).json()
        viewer = next(t for t in listing if t["name"] == "v")
        assert viewer["source"] == "config"
        assert c.delete(f"/api/v1/tokens/{viewer['id']}", headers=auth("admin")).status_code == 204
        assert c.get("/api/v1/sites", headers=auth("viewer")).status_code == 401
    with TestClient(create_app(settings)) as c:  # start again: the file still lists it
        assert c.get("/api/v1/sites", headers=auth("viewer")).status_code == 401
        assert c.get("/api/v1/sites", headers=auth("submitter")).status_code == 200


def test_lookup_is_by_hash(clean_redis: str) -> None:
    from broker.store.connect import async_client
    from broker.store.keys import Keys
    from broker.store.tokens import TokenStore

    async def go() -> None:
        r = async_client(clean_redis)
        store = TokenStore(r, Keys())
        secret, rec = await store.create("n", "viewer", ["*"])
        found, verdict = await store.authenticate(secret, 0)
        assert found == rec and verdict.count == 0 and not verdict.limited
        assert (await store.authenticate(secret[:-1], 0))[0] is None
        assert (await store.authenticate(TOKENS["admin"], 0))[0] is None  # not seeded here
        await r.aclose()

    asyncio.run(go())


def test_the_store_lists_and_revokes_around_a_record_it_cannot_read(clean_redis: str) -> None:
    """A record this version cannot decode (written by another, or damaged) is passed over, not
    the end of the list; revoking says what happened and clears the token's rate counter."""
    from broker.store.connect import async_client
    from broker.store.keys import Keys
    from broker.store.tokens import TokenStore, digest

    async def go() -> None:
        r = async_client(clean_redis)
        k = Keys()
        store = TokenStore(r, k)
        try:
            await r.hset(k.tokens, "0" * 64, "not a token record")  # first in the hash
            _s1, root = await store.create("root", "admin", ["*"])
            secret, viewer = await store.create("v", "viewer", ["*"])
            await store.authenticate(secret, 100)  # counts against its rate limit
            assert await r.exists(k.rate(digest(secret)))
            assert [rec.id for rec, _used in await store.all()] == [root.id, viewer.id]
            assert await store.revoke(viewer.id) == ("ok", viewer)
            assert not await r.exists(k.rate(digest(secret)))
            assert await store.revoke(viewer.id) == ("missing", None)
            assert [rec.id for rec, _used in await store.all()] == [root.id]
        finally:
            await r.aclose()

    asyncio.run(go())


def test_a_revoke_that_races_another_change_looks_again(clean_redis: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another replica writes the tokens between the revoke's read and its write: the write is
    refused (WATCH) and the revoke reads again and succeeds, rather than giving up."""
    from broker.store import tokens as tokens_mod
    from broker.store.connect import async_client, sync_client
    from broker.store.keys import Keys
    from broker.store.tokens import TokenStore

    async def go() -> None:
        r = async_client(clean_redis)
        k = Keys()
        store = TokenStore(r, k)
        try:
            _s, _root = await store.create("root", "admin", ["*"])
            _s2, victim = await store.create("v", "viewer", ["*"])
            real = tokens_mod._decode_all
            reads = []

            def racing(raw: dict) -> dict:  # type: ignore[type-arg]
                reads.append(1)
                if len(reads) == 1:  # another replica makes a token right now
                    with sync_client(clean_redis) as other:
                        other.hset(k.tokens, "f" * 64, b"{}")
                return real(raw)

            monkeypatch.setattr(tokens_mod, "_decode_all", racing)
            assert await store.revoke(victim.id) == ("ok", victim)
            assert len(reads) == 2
        finally:
            await r.aclose()

    asyncio.run(go())


def test_a_damaged_token_record_lets_nobody_in_and_breaks_nothing_else(clean_redis: str) -> None:
    from broker.store.connect import async_client
    from broker.store.keys import Keys
    from broker.store.tokens import TokenStore, digest

    async def go() -> None:
        r = async_client(clean_redis)
        store = TokenStore(r, Keys())
        try:
            secret, _rec = await store.create("v", "viewer", ["*"])
            other, rec2 = await store.create("w", "viewer", ["*"])
            await r.hset(Keys().tokens, digest(secret), "{not json")
            assert (await store.authenticate(secret, 0))[0] is None
            assert (await store.authenticate(other, 0))[0] == rec2
        finally:
            await r.aclose()

    asyncio.run(go())


def test_secrets_and_ids_have_their_documented_shape() -> None:
    """``sf_`` marks a superfed secret for secret scanners; 32 random bytes behind it; ids are
    ``tok-`` and 12 hex digits (what the admin API and the audit log show)."""
    import re

    from broker.store.tokens import new_token, new_token_id

    secret = new_token()
    assert re.fullmatch(r"sf_[A-Za-z0-9_-]{43}", secret)
    assert re.fullmatch(r"tok-[0-9a-f]{12}", new_token_id())


def test_a_config_token_is_read_from_its_file_or_its_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    from broker.config import TokenConfig
    from broker.store.tokens import config_token_digest, digest

    f = tmp_path / "t"
    f.write_text("  file-secret-0000000000\n")
    assert config_token_digest(TokenConfig(name="f", role="viewer", file=str(f))) == digest("file-secret-0000000000")
    monkeypatch.setenv("SUPERFED_TEST_TOKEN", " env-secret-00000000000 ")
    assert config_token_digest(TokenConfig(name="e", role="viewer", env="SUPERFED_TEST_TOKEN")) == digest(
        "env-secret-00000000000")
    monkeypatch.delenv("SUPERFED_TEST_TOKEN")
    with pytest.raises(ValueError) as unset:
        config_token_digest(TokenConfig(name="e", role="viewer", env="SUPERFED_TEST_TOKEN"))
    assert str(unset.value) == "token 'e': environment variable 'SUPERFED_TEST_TOKEN' is not set"
