"""``superfed token create|list|revoke`` against a running broker, and ``superfed config export``
writing the live config (an admin's run-time change included) back as TOML that loads again."""

from __future__ import annotations

import tomllib
from pathlib import Path

import httpx
import pytest
import redis

from broker.app import create_app
from broker.cli import main
from broker.config import load
from broker.config_export import dumps
from tests.api.conftest import TOKENS
from tests.support.servers import ThreadedServer


def _config(tmp: Path, redis_url: str) -> Path:
    cfg = tmp / "superfed.toml"
    cfg.write_text(f"""
redis_url = "{redis_url}"

[api]
rate_limit_per_minute = 100

[[tokens]]
name = "root"
role = "admin"
token = "{TOKENS['admin']}"

[credentials.cscs-secret]
env = "CSCS_SECRET"
hosts = ["*.cscs.example"]

[[sites]]
name = "alcf"
kind = "iri"
url = "http://127.0.0.1:9/api/v1"
systems = ["polaris"]
file_roots = {{ m1 = ["/home"] }}
accounts = {{ m1 = "ALCF_M1" }}
auth = {{ token_file = "secrets/iri-token" }}
limits = {{ max_nodes = 8 }}
""")
    return cfg


@pytest.fixture
def api(clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    cfg = _config(tmp_path, clean_redis)
    with ThreadedServer(create_app(load(cfg))) as srv:
        monkeypatch.setenv("SUPERFED_URL", srv.url)
        monkeypatch.setenv("SUPERFED_TOKEN", TOKENS["admin"])
        yield srv.url, cfg


def test_token_commands(api, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    url, _ = api
    assert main(["token", "create", "beamline", "--role", "submitter", "--projects", "m1,m2", "-q"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("sf_")
    assert httpx.get(f"{url}/api/v1/jobs", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert main(["token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "beamline" in listing and "submitter" in listing and "m1,m2" in listing and secret not in listing
    token_id = next(line.split()[0] for line in listing.splitlines() if "beamline" in line)
    assert main(["token", "revoke", token_id]) == 0
    assert httpx.get(f"{url}/api/v1/jobs", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert main(["token", "revoke", token_id]) == 1  # gone: a one-line reason, non-zero
    assert "404" in capsys.readouterr().err
    assert main(["token", "create", "x", "--expires-at", "2000-01-01T00:00:00Z"]) == 1
    assert "future" in capsys.readouterr().err


def test_config_export_writes_the_live_config(api, tmp_path: Path, clean_redis: str) -> None:  # type: ignore[no-untyped-def]
    url, cfg = api
    admin = {"Authorization": f"Bearer {TOKENS['admin']}"}
    current = httpx.get(f"{url}/api/v1/sites/alcf/config", headers=admin)
    body = {**current.json()["config"], "weight": 4.5, "draining": True}
    assert httpx.put(f"{url}/api/v1/sites/alcf", json=body,
                     headers={**admin, "If-Match": current.headers["etag"]}).status_code == 200
    new = {"name": "cscs", "kind": "firecrest", "url": "https://api.cscs.example/v2", "systems": ["daint"],
           "auth": {"client_id": "superfed", "token_url": "https://auth.cscs.example/token",
                    "client_secret_credential": "cscs-secret"}}
    assert httpx.post(f"{url}/api/v1/sites", json=new, headers=admin).status_code == 201
    out = tmp_path / "exported.toml"
    assert main(["config", "export", "--config", str(cfg), "--output", str(out)]) == 0
    text = out.read_text()
    assert TOKENS["admin"] not in text  # written as its SHA-256
    again = load(out)
    assert [s.name for s in again.sites] == ["alcf", "cscs"]
    alcf = again.sites[0]
    assert alcf.weight == 4.5 and alcf.draining and alcf.accounts == {"m1": "ALCF_M1"} and alcf.file_roots == {
        "m1": ["/home"]}
    # the config file's inline token_file was exported as the credential it became, still bound
    assert alcf.limits.max_nodes == 8 and alcf.auth == {"token_credential": "alcf.token"}
    assert again.credentials["alcf.token"].file.endswith("secrets/iri-token")  # type: ignore[union-attr]
    assert again.credentials["alcf.token"].hosts == ["127.0.0.1"]
    assert again.sites[1].auth["client_secret_credential"] == "cscs-secret"
    assert again.credentials["cscs-secret"].env == "CSCS_SECRET"
    assert again.api.rate_limit_per_minute == 100 and again.redis_url == clean_redis
    assert again.tokens[0].sha256 and again.tokens[0].token is None and again.tokens[0].name == "root"
    # the exported file runs a broker that accepts the same token
    redis.Redis.from_url(clean_redis).flushall()
    with ThreadedServer(create_app(again)) as srv:
        r = httpx.get(f"{srv.url}/api/v1/sites/alcf", headers=admin)
        assert r.status_code == 200 and r.json()["weight"] == 4.5


def test_toml_writer_round_trips() -> None:
    data = {"a": 1, "b": "quote \" back\\slash \n tab\t é", "c": [1.5, float("inf")], "d": True,
            "t": {"x": {"y": [1, 2]}, "none": None, "empty": {}}, "arr": [{"k": "v", "n": {"m": 1}}, {"k": "w"}],
            "weird key": "ok", "skip": None}
    text = dumps(data, header="two\nlines")
    assert text.startswith("# two\n# lines\n")  # the header is comments, nothing else
    back = tomllib.loads(text)
    assert back == {k: v for k, v in data.items() if k != "skip"} | {"t": {"x": {"y": [1, 2]}, "empty": {}}}
