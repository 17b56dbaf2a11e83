"""Secrets never leave: submit, fail and edit with known secrets in play (a facility client
secret read from the environment, a wrong one a facility refuses, the admin token, a token made
through the API), then search every response body and header, the audit log, Redis and every
log line captured at DEBUG (the API's and the worker code's, all in this process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx
import pytest
import redis
from litestar.testing import TestClient

from broker.app import create_app
from broker.config import validate
from broker.tasks import health, submit
from broker.tasks.runtime import Runtime
from simulators.common.facility import SimSettings
from simulators.firecrest import create_app as firecrest_app
from tests.api.conftest import TOKENS
from tests.support.servers import ThreadedServer

SECRET = "fc-client-secret-4f9b2c7e1d"  # what the facility accepts
WRONG = "fc-wrong-secret-8a1e6d3b0c"  # what another site is configured with: refused
ADMIN = TOKENS["admin"]
SPEC = {"executable": "/bin/hostname", "resources": {"node_count": 1}, "attributes": {"duration": 600}}


class Collect(logging.Handler):
    """Every record of every logger, formatted with its traceback: what an operator's log holds."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def attach(self) -> None:
        # Litestar's logging config replaces the root handlers at start-up (caplog's among them),
        # and some loggers do not propagate: so hang this on the root and on every logger there is
        for logger in [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]:
            if self not in logger.handlers:
                logger.addHandler(self)
        logging.getLogger().setLevel(logging.DEBUG)

    def detach(self) -> None:
        for logger in [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]:
            logger.removeHandler(self)


class Seen:
    """Everything a client or an operator could see."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def response(self, r: httpx.Response) -> httpx.Response:
        self.texts.append(r.text)
        self.texts.extend(f"{k}: {v}" for k, v in r.headers.items())
        return r


def _settings(redis_url: str, sim_url: str) -> Any:
    def site(name: str, env: str) -> dict[str, Any]:
        return {"name": name, "kind": "firecrest", "url": sim_url, "systems": ["daint"], "file_roots": {"*": ["/"]},
                "health_interval": 1.0, "http": {"retries": 0},
                "auth": {"client_id": "superfed", "token_url": f"{sim_url}/auth/token", "client_secret_env": env}}

    return validate({
        "redis_url": redis_url,
        "tokens": [{"name": "root", "role": "admin", "token": ADMIN}],
        "sites": [site("cscs", "SUPERFED_TEST_SECRET"), site("refused", "SUPERFED_TEST_WRONG")],
    })


@pytest.fixture
def sim() -> Any:
    settings = SimSettings(
        enforce_policy=False, systems=["daint"], client_id="superfed", client_secret=SECRET, time_scale=0.05
    )
    with ThreadedServer(firecrest_app(settings)) as srv:
        yield srv


def test_no_secret_in_any_response_header_audit_entry_or_log(
    clean_redis: str, sim: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPERFED_TEST_SECRET", SECRET)
    monkeypatch.setenv("SUPERFED_TEST_WRONG", WRONG)
    caplog.set_level(logging.DEBUG)
    settings = _settings(clean_redis, sim.url)
    seen = Seen()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    collect = Collect()
    with TestClient(create_app(settings)) as c:
        collect.attach()
        caplog.set_level(logging.DEBUG)
        logging.getLogger().addHandler(caplog.handler)
        made = c.post("/api/v1/tokens", json={"name": "ops", "role": "submitter"}, headers=admin)
        assert made.status_code == 201
        minted = made.json()["token"]  # the one place it may appear
        bearer = {"Authorization": f"Bearer {minted}"}

        # submit, and let the worker code check health and submit through the adapter
        job = seen.response(c.post("/api/v1/jobs", json={"project": "m1", "spec": SPEC,
                                                         "placement": {"site": "cscs"}}, headers=bearer)).json()
        async def worker_code() -> None:
            rt = Runtime(settings)
            try:
                for name in ("cscs", "refused"):
                    await asyncio.wait_for(health.run(rt, name), 30)
                with contextlib.suppress(Exception):  # whether placed or told to try later, nothing leaks
                    await asyncio.wait_for(submit.run(rt, job["id"]), 30)
            finally:
                await rt.aclose()

        collect.attach()  # the worker code's loggers too
        asyncio.run(worker_code())
        seen.response(c.get(f"/api/v1/jobs/{job['id']}", headers=bearer))

        # fail: the facility refuses one site's secret; a token that is a secret; bad input
        for site in ("refused", "cscs"):
            seen.response(c.get(f"/api/v1/sites/{site}/files", params={"path": "/home", "project": "m1"},
                                headers=admin))
        seen.response(c.get("/api/v1/projects", headers=admin))
        seen.response(c.get("/api/v1/status", headers=admin))
        seen.response(c.get("/api/v1/sites", headers={"Authorization": f"Bearer {SECRET}"}))
        bad = seen.response(c.post("/api/v1/sites", headers=admin, json={
            "name": "leaky", "kind": "firecrest", "url": f"https://svc:{SECRET}@example.org", "systems": ["d"],
            "auth": {"client_id": "x", "token_url": "https://example.org/t", "client_secret": SECRET}}))
        assert bad.status_code == 422

        # edit: read the config, replace, drain, enable, delete a token
        cfg = seen.response(c.get("/api/v1/sites/cscs/config", headers=admin))
        body = {**cfg.json()["config"], "weight": 3.0}
        seen.response(c.put("/api/v1/sites/cscs", json=body, headers={**admin, "If-Match": cfg.headers["etag"]}))
        seen.response(c.post("/api/v1/sites/refused/drain", headers=admin))
        seen.response(c.post("/api/v1/sites/refused/enable", headers=admin))
        seen.response(c.get("/api/v1/sites/cscs", headers=admin))
        seen.response(c.get("/api/v1/tokens", headers=admin))
        seen.response(c.delete(f"/api/v1/tokens/{made.json()['id']}", headers=admin))
        seen.response(c.get("/api/v1/sites", headers=bearer))  # revoked: 401
        audit = seen.response(c.get("/api/v1/audit", params={"limit": 1000}, headers=admin))
        assert {e["action"] for e in audit.json()["items"]} >= {"token.create", "site.replace", "site.drain"}
        seen.response(c.get("/metrics"))

    r_ = redis.Redis.from_url(clean_redis)
    stored: list[bytes] = []
    for key in r_.keys("*"):
        kind = r_.type(key)
        if kind == b"hash":
            stored += [k + b"=" + v for k, v in r_.hgetall(key).items()]
        elif kind == b"list":
            stored += r_.lrange(key, 0, -1)
        elif kind == b"string":
            stored.append(r_.get(key) or b"")
        elif kind == b"zset":
            stored += [m for m, _ in r_.zrange(key, 0, -1, withscores=True)]
    collect.detach()
    logs = collect.lines + [rec.getMessage() for rec in caplog.records] + [caplog.text]

    assert len(seen.texts) > 40 and len(collect.lines) > 20
    assert any("superfed" in line for line in collect.lines)  # the broker's own loggers were heard
    for secret in (SECRET, WRONG, ADMIN, minted):
        for where, texts in (("responses", seen.texts), ("logs", logs)):
            leaks = [t for t in texts if secret in t]
            assert not leaks, (where, secret, leaks[:2])
        assert not [s for s in stored if secret.encode() in s], ("redis", secret)
    assert minted in made.text  # shown once, at creation
