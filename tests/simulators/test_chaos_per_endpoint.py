"""Chaos aimed at job submissions alone (``"only": "submit"``), and answers held after the work
is done (``answer_delay_ms``): what the late-copy drill needs of every simulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar

from simulators.common.facility import SimSettings
from simulators.firecrest.app import create_app as firecrest_app
from simulators.iri import create_app as iri_app
from simulators.sfapi.app import create_app as sfapi_app
from tests.support.servers import ThreadedServer

POLARIS = "55c1c993-1124-47f9-b823-514ba3849a9a"  # the IRI simulator's polaris resource
TOKEN = "chaos-token"

# kind -> (app factory, its submission path, another POST of the same API that is not one)
KINDS: dict[str, tuple[Callable[[SimSettings], Litestar], str, str]] = {
    "sfapi": (sfapi_app, "/api/v1.2/compute/jobs/perlmutter", "/api/v1.2/utilities/command/perlmutter"),
    "firecrest": (firecrest_app, "/compute/daint/jobs", "/filesystem/daint/ops/mkdir"),
    "iri": (iri_app, f"/api/v1/compute/job/{POLARIS}", f"/api/v1/compute/status/{POLARIS}"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_only_submissions_get_the_chaos(kind: str) -> None:
    factory, submit_path, other_post = KINDS[kind]
    systems = {"sfapi": ["perlmutter"], "firecrest": ["daint"], "iri": ["polaris"]}[kind]
    with (
        ThreadedServer(factory(SimSettings(systems=systems, static_tokens=[TOKEN]))) as srv,
        httpx.Client(base_url=srv.url, timeout=10) as c,
    ):
        c.post("/_sim/chaos", json={"error_rate": 1.0, "status": 503, "only": "submit"}).raise_for_status()
        r = c.post(submit_path, json={})
        assert r.status_code == 503 and r.headers.get("x-sim-chaos") == "1"
        # the rest of the API is untouched: its own answer (no token: refused), not chaos's
        for method, path in (("POST", other_post), ("GET", submit_path.rsplit("/", 1)[0])):
            r = c.request(method, path, json={})
            assert r.status_code != 503 and "x-sim-chaos" not in r.headers, (method, path, r.status_code)
        c.post("/_sim/chaos", json={}).raise_for_status()
        assert c.post(submit_path, json={}).status_code != 503


def test_an_unknown_target_is_refused() -> None:
    with ThreadedServer(iri_app(SimSettings(systems=["polaris"]))) as srv:
        r = httpx.post(f"{srv.url}/_sim/chaos", json={"only": "files"}, timeout=10)
        assert r.status_code == 400 and "only" in r.text


def test_a_held_answer_comes_after_the_job_is_made() -> None:
    settings = SimSettings(enforce_policy=False, systems=["polaris"], nodes=4, time_scale=0.01, static_tokens=[TOKEN])
    body: dict[str, Any] = {
        "executable": "/bin/true", "name": "held", "resources": {"node_count": 1},
        "attributes": {"duration": 600, "account": "m0001", "queue_name": "debug",
                       "custom_attributes": {"filesystems": "home"}},
    }
    with ThreadedServer(iri_app(settings)) as srv:
        ctl = httpx.Client(base_url=srv.url, timeout=10)
        ctl.post("/_sim/chaos", json={"only": "submit", "answer_delay_ms": 8000}).raise_for_status()
        with pytest.raises(httpx.ReadTimeout):  # the client gives up first
            httpx.post(f"{srv.url}/api/v1/compute/job/{POLARIS}", json=body,
                       headers={"Authorization": f"Bearer {TOKEN}"}, timeout=0.5)
        assert [j["name"] for j in ctl.get("/_sim/jobs").json()["jobs"]] == ["held"]  # made all the same
        # other requests are not held (a read that waited 8 s would time out here)
        r = ctl.get("/api/v1/status/resources", timeout=4)
        assert r.status_code == 200
        ctl.close()
