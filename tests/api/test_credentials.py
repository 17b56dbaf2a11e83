"""Credentials bound to their sites (broker/credentials.py): the operator declares each
credential source in the config file with the hosts it may go to; the admin API names them only;
a credential is never sent to another host, also when a stored site and the config disagree.

The attack these repeat: an admin adds a site that reuses another site's credential (or any file
or variable on the broker's host) with a URL and token URL of their choosing, and the facility's
secret arrives at their listener."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from litestar.testing import TestClient

from adapters.errors import AuthFailed
from broker.adapter_pool import AdapterPool, Refusing
from broker.app import create_app
from broker.config import ConfigError, SiteConfig, load, validate
from broker.credentials import CredentialSource
from broker.store.connect import async_client
from broker.store.keys import Keys
from broker.store.sites import SiteStore
from tests.api.conftest import auth, settings_for

SECRET = "facility-secret-0123456789"
SEEDED = {"name": "alcf", "kind": "iri", "url": "https://api.alcf.anl.gov/api/v1", "systems": ["polaris"],
          "auth": {"token_env": "SUPERFED_TEST_ALCF"}}


class Listener:
    """An HTTP listener on loopback that records the Authorization header of every request."""

    def __init__(self) -> None:
        seen = self.seen = []  # type: list[str]

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                seen.append(self.headers.get("Authorization", ""))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"[]")

            do_GET = do_POST = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def admin_client(clean_redis: str) -> Iterator[TestClient]:
    s = settings_for(clean_redis, sites=[SEEDED])
    with TestClient(create_app(s)) as c:
        yield c


def _post(c: TestClient, site: dict) -> object:
    return c.post("/api/v1/sites", json=site, headers=auth("admin"))


def test_an_inline_file_or_variable_becomes_a_credential_bound_to_the_sites_hosts() -> None:
    s = validate({"sites": [{
        "name": "nersc", "kind": "sfapi", "url": "https://api.nersc.gov/api/v1.2", "systems": ["perlmutter"],
        "auth": {"client_id": "abcdefghijklm", "private_key_file": "/etc/superfed/nersc.pem"}}]})
    assert s.sites[0].auth == {"client_id": "abcdefghijklm", "private_key_credential": "nersc.private_key"}
    # the SF API key signs assertions for NERSC's OIDC server: that host is bound too
    assert s.credentials["nersc.private_key"] == CredentialSource(
        file="/etc/superfed/nersc.pem", hosts=["api.nersc.gov", "oidc.nersc.gov"])


@pytest.mark.parametrize("auth_table, words", [
    ({"token_file": "/etc/passwd"}, "auth.token_file: name a credential"),
    ({"token_env": "SUPERFED_TEST_ALCF"}, "auth.token_env: name a credential"),
    ({"token_credential": "no-such"}, "no credential named 'no-such'"),
])
def test_the_admin_api_takes_only_declared_credentials_by_name(admin_client: TestClient, auth_table: dict,
                                                              words: str) -> None:
    r = _post(admin_client, {**SEEDED, "name": "gamma", "url": "http://127.0.0.1:9/api/v1", "auth": auth_table})
    assert r.status_code == 422 and words in r.text, r.text  # type: ignore[attr-defined]
    assert admin_client.get("/api/v1/sites/gamma", headers=auth("admin")).status_code == 404  # nothing half-done
    audit = admin_client.get("/api/v1/audit", headers=auth("admin")).json()["items"]
    assert not [e for e in audit if e["target"] == "gamma"]


@pytest.mark.parametrize("change", [
    {"url": "http://127.0.0.1:9/api/v1"},  # the API somewhere else
    {"url": "https://api.alcf.anl.gov.evil.example/api/v1"},  # a look-alike host
])
def test_another_sites_credential_is_refused_for_a_host_it_is_not_bound_to(admin_client: TestClient,
                                                                          change: dict) -> None:
    body = {**SEEDED, "name": "gamma", "auth": {"token_credential": "alcf.token"}, **change}
    r = _post(admin_client, body)
    assert r.status_code == 422, r.text  # type: ignore[attr-defined]
    err = r.json()["errors"]  # type: ignore[attr-defined]
    assert [e["field"] for e in err] == ["auth.token_credential"]
    assert "may be sent only to api.alcf.anl.gov" in err[0]["message"]
    # the same credential for a site on its own host is fine
    assert _post(admin_client, {**body, "url": SEEDED["url"]}).status_code == 201  # type: ignore[attr-defined]


def test_a_token_url_elsewhere_is_refused_too(clean_redis: str) -> None:
    s = settings_for(clean_redis, sites=[], credentials={
        "cscs": {"env": "SUPERFED_TEST_CSCS", "hosts": ["*.cscs.ch"]}})
    site = {"name": "cscs", "kind": "firecrest", "url": "https://api.cscs.ch/hpc/firecrest/v2",
            "systems": ["daint"], "auth": {"client_id": "superfed", "token_url": "https://auth.cscs.ch/token",
                                           "client_secret_credential": "cscs"}}
    with TestClient(create_app(s)) as c:
        bad = _post(c, {**site, "auth": {**site["auth"], "token_url": "https://collector.example/token"}})
        assert bad.status_code == 422 and "collector.example" in bad.text, bad.text  # type: ignore[attr-defined]
        assert _post(c, site).status_code == 201  # type: ignore[attr-defined]


def test_a_seeded_site_round_trips_through_the_admin_api_but_cannot_move_its_credential(
        admin_client: TestClient) -> None:
    current = admin_client.get("/api/v1/sites/alcf/config", headers=auth("admin"))
    cfg = current.json()["config"]
    assert cfg["auth"] == {"token_credential": "alcf.token"}  # a name: no path or variable is shown
    headers = {**auth("admin"), "If-Match": current.headers["etag"]}
    moved = admin_client.put("/api/v1/sites/alcf", json={**cfg, "url": "https://listener.example/api/v1"},
                             headers=headers)
    assert moved.status_code == 422 and "listener.example" in moved.text, moved.text
    ok = admin_client.put("/api/v1/sites/alcf", json={**cfg, "weight": 3.0}, headers=headers)
    assert ok.status_code == 200, ok.text


def _pool_call(redis_url: str, site: SiteConfig, bound_to: list[str]) -> Exception | None:
    """Store ``site`` straight into Redis (as a stale or forged entry would be) and make a call
    (an authenticated call: a job query) through the broker's adapter pool with its
    credential bound to ``bound_to``."""
    credentials = {"alcf-token": CredentialSource(env="SUPERFED_TEST_ALCF", hosts=bound_to)}

    async def go() -> Exception | None:
        r = async_client(redis_url)
        pool = AdapterPool(SiteStore(r, Keys()), credentials=credentials)
        try:
            await pool.sites.create(site)
            found = await pool.by_name(site.name)
            assert found is not None
            try:
                await found[1].statuses(["1"], "perlmutter")
            except Exception as exc:  # the outcome is what the test looks at
                return exc
            return None
        finally:
            await pool.aclose()
            await r.aclose()

    return asyncio.run(go())


def test_the_pool_never_sends_a_credential_to_a_host_it_is_not_bound_to(
        clean_redis: str, listener: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERFED_TEST_ALCF", SECRET)
    # an SF API site with a fixed access token: its job queries carry it as a bearer token
    site = SiteConfig(name="gamma", kind="sfapi", url=f"{listener.url}/api/v1.2", systems=["perlmutter"],
                      auth={"access_token_credential": "alcf-token"})
    exc = _pool_call(clean_redis, site, ["api.alcf.anl.gov"])
    assert isinstance(exc, AuthFailed) and "may be sent only to api.alcf.anl.gov" in str(exc)
    assert listener.seen == []  # not one request, so not one secret
    # control: bound to the listener's host, the same site does send it (so the above can fail)
    redis.Redis.from_url(clean_redis).delete(Keys().sites)
    _pool_call(clean_redis, site, ["127.0.0.1"])
    assert f"Bearer {SECRET}" in listener.seen


def test_the_pool_refuses_files_and_variables_named_directly(clean_redis: str, listener: Listener,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERFED_TEST_ALCF", SECRET)
    site = SiteConfig(name="gamma", kind="iri", url=f"{listener.url}/api/v1", systems=["polaris"],
                      auth={"token_env": "SUPERFED_TEST_ALCF"})

    async def go() -> object:
        r = async_client(clean_redis)
        pool = AdapterPool(SiteStore(r, Keys()), allowed_hosts=[])
        try:
            return await pool.get(site, 1)
        finally:
            await pool.aclose()
            await r.aclose()

    assert isinstance(asyncio.run(go()), Refusing)
    assert listener.seen == []


@pytest.mark.parametrize("table, words", [
    ('[credentials.x]\nenv = "X"\nhosts = ["*"]\n', "credentials.x.hosts"),
    ('[credentials.x]\nenv = "X"\nfile = "/k"\nhosts = ["a.example"]\n', "exactly one of file or env"),
    ('[credentials.x]\nenv = "X"\nhosts = []\n', "credentials.x.hosts"),
    ('[credentials.x]\nenv = "A=1;B"\nhosts = ["a.example"]\n', "credentials.x.env"),
    ('[credentials."alcf.token"]\nenv = "X"\nhosts = ["a.example"]\n', "also in [credentials]"),
])
def test_the_config_file_names_each_bad_credential(tmp_path: Path, table: str, words: str) -> None:
    (tmp_path / "c.toml").write_text(
        table + '[[sites]]\nname = "alcf"\nkind = "iri"\nurl = "https://api.alcf.anl.gov"\n'
                'systems = ["polaris"]\nauth = { token_env = "T" }\n')
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace(".", r"\.")):
        load(tmp_path / "c.toml")


def test_relative_credential_files_resolve_against_the_config(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[credentials.k]\nfile = "keys/t"\nhosts = ["a.example"]\n')
    assert load(tmp_path / "c.toml").credentials["k"].file == str((tmp_path / "keys/t").resolve())
