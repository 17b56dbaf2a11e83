"""The broker's API over a real private Redis, through Litestar's test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from broker.app import create_app
from broker.config import validate

TOKENS = {
    "viewer": "tok-viewer-000000000000",
    "submitter": "tok-submitter-00000000",
    "admin": "tok-admin-0000000000000",
    "m1-submitter": "tok-m1-submitter-00000",
}


# what the operator declared for sites an admin adds in these tests (the admin API names
# credentials only, each bound to its hosts)
CREDENTIALS = {
    "gamma-token": {"env": "GAMMA_TOKEN", "hosts": ["127.0.0.1", "api.alcf.anl.gov"]},
    "unset-token": {"env": "SUPERFED_TEST_UNSET", "hosts": ["127.0.0.1"]},
    "nersc-key": {"env": "SUPERFED_TEST_UNSET", "hosts": ["127.0.0.1", "api.nersc.gov", "oidc.nersc.gov"]},
}


def settings_for(redis_url: str, sites: list[dict] | None = None,  # type: ignore[no-untyped-def]
                 credentials: dict[str, dict] | None = None):
    return validate(
        {
            "redis_url": redis_url,
            "credentials": CREDENTIALS if credentials is None else credentials,
            "tokens": [
                {"name": "v", "role": "viewer", "token": TOKENS["viewer"]},
                {"name": "s", "role": "submitter", "token": TOKENS["submitter"]},
                {"name": "a", "role": "admin", "token": TOKENS["admin"]},
                {"name": "s1", "role": "submitter", "projects": ["m1"], "token": TOKENS["m1-submitter"]},
            ],
            "sites": sites
            if sites is not None
            else [
                {
                    "name": "alpha",
                    "kind": "sfapi",
                    "url": "http://127.0.0.1:9/api/v1.2",
                    "systems": ["perlmutter"],
                    "limits": {"max_nodes": 16, "max_walltime": 3600},
                    "auth": {"client_id": "abcdefghijklm", "private_key_env": "NOPE"},
                },
                {
                    "name": "beta",
                    "kind": "sfapi",
                    "url": "http://127.0.0.1:9/api/v1.2",
                    "systems": ["perlmutter"],
                    "limits": {"max_nodes": 32, "max_walltime": 7200},
                    "auth": {"client_id": "abcdefghijklm", "private_key_env": "NOPE"},
                },
            ],
        }
    )


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture
def client(clean_redis: str) -> Iterator[TestClient]:
    app = create_app(settings_for(clean_redis))
    with TestClient(app) as c:
        yield c
