"""A job for a project that no allowed site has an account for is a 422 at once (every facility
would refuse its account), not a 202 and a failure at the facility. A site's accounts are what
its health checks found: an IRI facility's allocations, FireCREST's userinfo (account names, no
hours). Before a check the broker cannot know, and accepts the job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.app import create_app
from broker.config import validate
from simulators.common.facility import SimSettings
from simulators.firecrest import create_app as create_firecrest
from simulators.iri import create_app as create_iri
from tests.support.servers import ThreadedServer
from tests.tasks.conftest import Tasks

ADMIN = "tok-unknown-project-admin-00"
IRI_TOKEN = "iri-unknown-project-token-000000"
FC_SECRET = "firecrest-unknown-project-secret"


@pytest.fixture
def broker(clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Tasks]]:
    monkeypatch.setenv("SUPERFED_TEST_IRI_TOKEN", IRI_TOKEN)
    monkeypatch.setenv("SUPERFED_TEST_FC_SECRET", FC_SECRET)
    # both facilities know the accounts m0001 and m0002 (the simulators' default allocations)
    with ThreadedServer(create_iri(SimSettings(systems=["polaris"], static_tokens=[IRI_TOKEN]))) as iri, \
            ThreadedServer(create_firecrest(SimSettings(systems=["daint"], client_id="superfed",
                                                        client_secret=FC_SECRET))) as fc:
        settings = validate({
            "redis_url": clean_redis,
            "tokens": [{"name": "root", "role": "admin", "token": ADMIN}],
            "sites": [
                {"name": "alcf", "kind": "iri", "url": iri.url, "systems": ["polaris"],
                 "auth": {"token_env": "SUPERFED_TEST_IRI_TOKEN"}, "accounts": {"beamline": "m0002"}},
                {"name": "cscs", "kind": "firecrest", "url": fc.url, "systems": ["daint"],
                 "accounts": {"beamline": "m0002"},
                 "auth": {"client_id": "superfed", "token_url": f"{fc.url}/auth/token",
                          "client_secret_env": "SUPERFED_TEST_FC_SECRET"}},
            ],
        })
        tasks = Tasks(settings, {})
        try:
            app = create_app(settings)
            with ThreadedServer(app) as srv:
                # intake reads the accounts once a second (tests/unit/test_recent_accounts.py):
                # here each check must count at once
                app.state.accounts.ttl = 0
                yield srv.url, tasks
        finally:
            tasks.close()


def _post(url: str, project: str, **placement: str) -> httpx.Response:
    body = {"project": project, "spec": {"executable": "/bin/true"}, **({"placement": placement} if placement else {})}
    return httpx.post(f"{url}/api/v1/jobs", json=body, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)


def test_a_project_no_site_knows_is_refused_at_once(broker: tuple[str, Tasks]) -> None:
    url, tasks = broker
    assert _post(url, "nobody").status_code == 202  # no check yet: the accounts are not known
    assert tasks.check("alcf") == "up"
    assert _post(url, "nobody").status_code == 202  # cscs's accounts are still unknown: it might
    assert _post(url, "nobody", site="alcf").status_code == 422  # but not when only alcf is allowed
    assert tasks.check("cscs") == "up"  # FireCREST: the accounts its userinfo lists
    r = _post(url, "nobody")
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["detail"].startswith("no site knows project 'nobody'")
    assert [(e["field"], e["message"]) for e in problem["errors"]] == [
        ("project", "alcf: no allocation for account nobody"),
        ("project", "cscs: no allocation for account nobody"),
    ]
    assert "m0001" not in r.text  # other projects' accounts are not told
    # a project the facility knows by its own name, and one mapped to an account it knows
    for project in ("m0001", "beamline"):
        assert _post(url, project).status_code == 202
        assert _post(url, project, site="cscs").status_code == 202
    # the placement preview says the same
    r = httpx.post(f"{url}/api/v1/placement", json={"project": "nobody", "spec": {"executable": "/bin/true"}},
                   headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    assert r.status_code == 422
