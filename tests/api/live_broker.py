"""A real broker on loopback (uvicorn in a thread, a private Redis) in front of a simulated IRI
facility, for the SDK and the CLI. No worker runs: a test moves a job through its states itself,
through the store as a worker's task would (``Broker.advance``), so what the client shows is
decided by the test, not by a race with a poll."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.app import create_app
from broker.config import Settings, validate
from simulators.common.facility import SimSettings
from simulators.iri import create_app as create_iri
from tests.support.servers import ThreadedServer
from tests.tasks.conftest import Tasks

ADMIN = "tok-live-admin-00000000000"
VIEWER = "tok-live-viewer-0000000000"
IRI_TOKEN = "iri-live-token-000000000000000"
ROOT = "/eagle/m0001"  # project m1's file root at the site (a directory the simulator has)


@dataclass
class Broker:
    url: str
    settings: Settings
    tasks: Tasks

    def advance(self, job_id: str, state: str, **fields: Any) -> None:
        assert self.tasks.advance(job_id, state, **fields) == 1, f"{job_id} did not move to {state}"


@pytest.fixture
def live(clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    monkeypatch.setenv("SUPERFED_TEST_IRI_TOKEN", IRI_TOKEN)
    with ThreadedServer(create_iri(SimSettings(systems=["polaris"], static_tokens=[IRI_TOKEN]))) as iri:
        settings = validate({
            "redis_url": clean_redis,
            "api": {"rate_limit_per_minute": 600},
            "tokens": [{"name": "root", "role": "admin", "token": ADMIN},
                       {"name": "v", "role": "viewer", "token": VIEWER}],
            "sites": [{"name": "alcf", "kind": "iri", "url": iri.url, "systems": ["polaris"],
                       "auth": {"token_env": "SUPERFED_TEST_IRI_TOKEN"}, "file_roots": {"m1": [ROOT]}}],
        })
        tasks = Tasks(settings, {})
        try:
            with ThreadedServer(create_app(settings)) as srv:
                monkeypatch.setenv("SUPERFED_URL", srv.url)
                monkeypatch.setenv("SUPERFED_TOKEN", ADMIN)
                yield Broker(srv.url, settings, tasks)
        finally:
            tasks.close()


def job_body(name: str = "j", **spec: Any) -> dict[str, Any]:
    return {"project": "m1", "spec": {"name": name, "executable": "/bin/true", **spec}}
