"""Issue 11 (6): site URLs accepted link-local, metadata and any other address (SSRF), so an
admin could point a site, and its credentials, at a listener of their choosing. Now a site's
url and token_url must name a host the operator allows (allowed_site_hosts) and never a
link-local or cloud-metadata address, in the config file and through the admin API; the
adapter pool will not build a client for such a site even if one is stored."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from litestar.testing import TestClient

from adapters.errors import AuthFailed
from broker.adapter_pool import AdapterPool, Refusing
from broker.config import ConfigError, SiteConfig, validate
from broker.credentials import CredentialSource
from broker.site_hosts import host_allowed, resolved_problem, url_problem

SITE = {"name": "alpha", "kind": "iri", "url": "https://api.alcf.anl.gov/api/v1", "systems": ["polaris"],
        "auth": {"token_env": "T"}}


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data", "http://[fe80::1]/", "http://169.254.1.2:8080/",
    "http://metadata.google.internal/computeMetadata/v1", "http://[::ffff:169.254.169.254]/", "http://0.0.0.0/",
    "http://[fd00:ec2::254]/",
])
def test_link_local_and_metadata_are_always_refused(url: str) -> None:
    assert url_problem(url, []) is not None
    with pytest.raises(ConfigError, match=r"sites\[0\]\.url"):
        validate({"sites": [{**SITE, "url": url}]})
    sf = {"name": "nersc", "kind": "sfapi", "url": "https://api.nersc.gov/api/v1.2", "systems": ["pm"],
          "auth": {"client_id": "abcdefghijklm", "private_key_env": "K", "token_url": url}}
    with pytest.raises(ConfigError, match=r"sites\[0\]\.auth\.token_url"):
        validate({"sites": [sf]})


def test_only_the_operators_hosts_when_it_names_them() -> None:
    allowed = ["api.alcf.anl.gov", "*.nersc.gov", "127.0.0.1"]
    assert host_allowed("api.nersc.gov", allowed) and host_allowed("API.ALCF.anl.gov.", allowed)
    assert not host_allowed("nersc.gov.evil.example", allowed) and not host_allowed("10.0.0.5", allowed)
    validate({"allowed_site_hosts": allowed, "sites": [SITE]})
    with pytest.raises(ConfigError, match="not in allowed_site_hosts"):
        validate({"allowed_site_hosts": allowed, "sites": [{**SITE, "url": "https://listener.example/api"}]})
    validate({"sites": [{**SITE, "url": "https://listener.example/api"}]})  # none named: any host


def test_the_admin_api_refuses_them_too(clean_redis: str) -> None:
    import msgspec

    from broker.app import create_app
    from tests.api.conftest import auth, settings_for

    s = msgspec.structs.replace(settings_for(clean_redis), allowed_site_hosts=["127.0.0.1", "*.anl.gov"])
    gamma = {**SITE, "name": "gamma", "auth": {"token_credential": "gamma-token"}}
    with TestClient(create_app(s)) as c:
        for url, words in (("http://169.254.1.1/", "link-local"), ("http://169.254.169.254/", "metadata"),
                           ("https://evil.example/", "allowed_site_hosts")):
            r = c.post("/api/v1/sites", json={**gamma, "url": url}, headers=auth("admin"))
            assert r.status_code == 422 and words in r.text, r.text
            assert any(e["field"] == "url" for e in r.json()["errors"])
        assert c.post("/api/v1/sites", json=gamma, headers=auth("admin")).status_code == 201


def test_a_name_resolving_to_metadata_is_refused_when_the_adapter_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def fake(host: str, *a: Any, **kw: Any) -> Any:  # DNS answering with the metadata address
        if host == "innocent.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 443))]
        return real(host, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    url = "https://innocent.example/api/v1"
    assert url_problem(url, []) is None and "169.254.169.254" in (resolved_problem(url, []) or "")
    site = SiteConfig(name="alpha", kind="iri", url=url, systems=["polaris"], auth={"token_credential": "t"})
    bound = {"t": CredentialSource(env="T", hosts=["innocent.example"])}  # the name is allowed; its address not

    async def go() -> None:
        pool = AdapterPool(sites=None, allowed_hosts=[], credentials=bound)  # type: ignore[arg-type]
        adapter = await pool.get(site, 1)
        assert isinstance(adapter, Refusing)
        with pytest.raises(AuthFailed, match=r"169\.254\.169\.254.*nothing is sent there"):
            await adapter.health()
        await pool.aclose()

    asyncio.run(go())
