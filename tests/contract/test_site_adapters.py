"""One behaviour suite for every adapter, each against its own simulator over real HTTP.

What the broker relies on must hold the same way at every kind of site: the adapters are
built through the registry from plain config (as the broker builds them), and the same
scenario runs for SF API, FirecREST v2 and IRI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from adapters import registry
from adapters.base import AdapterBase
from adapters.errors import AdapterError, AuthFailed, GarbageResponse, NotFound, SiteRejected
from adapters.http import HttpSettings
from adapters.psij import JobAttributes, JobSpec, ResourceSpec
from adapters.types import FINAL_STATES, JobStatus, SubmitRequest
from simulators.cli import create_app
from simulators.common.facility import SimSettings
from tests.support.openapi import ValidatingASGI, load_spec
from tests.support.servers import ThreadedServer
from tests.support.sfapi import rsa_keypair

pytestmark = pytest.mark.anyio
# IRI twice: v1 as ALCF runs it, v2 as the reference implementation does (the same simulator)
KINDS = ["sfapi", "firecrest", "iri-v1", "iri-v2"]
HOME = {"sfapi": "/global/homes/s/superfed", "firecrest": "/home/superfed", "iri": "/home/superfed"}
SYSTEM = {"sfapi": "perlmutter", "firecrest": "daint", "iri": "polaris"}
SPECS = {
    "firecrest": "firecrest-v2/openapi-latest.yaml",
    "iri-v1": "iri/all_spec_v1.yaml",
    "iri-v2": "iri/all_spec_v2.yaml",
}
HTTP = HttpSettings(retries=2, backoff_base=0.01, backoff_cap=0.05, read_timeout=5.0)


@dataclass
class Site:
    kind: str
    url: str
    auth: dict[str, Any]
    api_version: str | None = None

    def control(self, what: str, body: dict[str, Any] | None = None) -> None:
        httpx.post(f"{self.url}/_sim/{what}", json=body or {}, timeout=10).raise_for_status()

    def adapter(self) -> AdapterBase:
        return registry.build(
            self.kind,
            name=f"test-{self.kind}",
            url=self.url,
            systems=[SYSTEM[self.kind]],
            auth=self.auth,
            http=HTTP,
            api_version=self.api_version,
        )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=KINDS)
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    param: str = request.param
    kind, _, version = param.partition("-")
    tmp = tmp_path_factory.mktemp(param)
    settings = SimSettings(enforce_policy=False, systems=[SYSTEM[kind]], nodes=8, time_scale=0.05)
    auth: dict[str, Any]
    if kind == "sfapi":
        private, public = rsa_keypair()
        (tmp / "key.pem").write_text(private)
        (tmp / "key.pem").chmod(0o600)
        settings.client_id, settings.public_key_pem = "abcdefghijklm", public
        auth = {"client_id": "abcdefghijklm", "private_key_file": str(tmp / "key.pem")}
    elif kind == "firecrest":
        settings.client_id, settings.client_secret = "contract", "s3cret-contract"
        (tmp / "secret").write_text("s3cret-contract")
        auth = {"client_id": "contract", "client_secret_file": str(tmp / "secret")}
    else:
        settings.static_tokens = ["iri-contract-token"]
        (tmp / "token").write_text("iri-contract-token")
        auth = {"token_file": str(tmp / "token")}
    app = create_app(kind, settings)
    # the token endpoint (the identity provider's, not FirecREST's) is not in the spec
    validator = (
        ValidatingASGI(app, load_spec(SPECS[param]), skip_prefixes=("/_sim", "/auth/")) if param in SPECS else None
    )
    with ThreadedServer(validator or app) as srv:
        settings.public_url = srv.url
        if kind == "sfapi":
            auth["token_url"] = f"{srv.url}/c2id/token"
        elif kind == "firecrest":
            auth["token_url"] = f"{srv.url}/auth/token"
        yield Site(kind, srv.url, auth, version or None)
    if validator is not None:  # every answer the adapter saw follows the facility's published spec
        assert validator.errors == [] and validator.validated > 20, (validator.errors[:5], validator.validated)


@pytest.fixture
async def adapter(site: Site) -> AsyncIterator[AdapterBase]:
    site.control("reset")
    a = site.adapter()
    yield a
    await a.aclose()
    site.control("chaos", {})
    site.control("credentials", {"valid": True})


def req(site: Site, tag: str, command: str, *, duration: int = 600) -> SubmitRequest:
    spec = JobSpec(
        executable="/bin/bash",
        arguments=["-c", command],
        resources=ResourceSpec(node_count=1),
        attributes=JobAttributes(duration=duration, account="m0001", custom_attributes={"filesystems": "home"}),
    )
    return SubmitRequest(tag=tag, spec=spec, system=SYSTEM[site.kind], project="m0001")


async def until(a: AdapterBase, native: str, system: str, done: set[str], timeout: float = 15) -> JobStatus:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        st = (await a.statuses([native], system)).get(native)
        if st is not None and st.state in done:
            return st
        assert asyncio.get_running_loop().time() < deadline, f"{native} stuck at {st}"
        await asyncio.sleep(0.1)


async def test_health_is_up_with_compute(adapter: AdapterBase) -> None:
    h = await adapter.health()
    assert h.state == "up"
    assert "compute" in {c.name for c in h.components}


async def test_job_life_exit_code_and_tag(site: Site, adapter: AdapterBase) -> None:
    system = SYSTEM[site.kind]
    receipt = await adapter.submit(req(site, "contract-1", "sleep 1; exit 3"))
    assert receipt.native_id and receipt.system == system
    found = await adapter.find_by_tag("contract-1", system)
    assert found is not None and found.native_id == receipt.native_id
    assert await adapter.find_by_tag("never-submitted", system) is None
    st = await until(adapter, receipt.native_id, system, set(FINAL_STATES))
    assert (st.state, st.exit_code) == ("FAILED", 3) and st.native_state
    ok = await adapter.submit(req(site, "contract-2", "sleep 1"))
    st = await until(adapter, ok.native_id, system, set(FINAL_STATES))
    assert (st.state, st.exit_code) == ("COMPLETED", 0)
    both = await adapter.statuses([receipt.native_id, ok.native_id, "99999999"], system)
    assert set(both) == {receipt.native_id, ok.native_id}  # unknown ids are left out, not "completed"


async def test_cancel_and_cancel_again(site: Site, adapter: AdapterBase) -> None:
    system = SYSTEM[site.kind]
    r = await adapter.submit(req(site, "contract-3", "sleep 600"))
    await adapter.cancel(r.native_id, system)
    st = await until(adapter, r.native_id, system, {"CANCELED"})
    assert st.state == "CANCELED"
    await adapter.cancel(r.native_id, system)  # already final: not an error


async def test_rejection_keeps_the_facilitys_message(site: Site, adapter: AdapterBase) -> None:
    with pytest.raises(SiteRejected) as exc:
        await adapter.submit(req(site, "contract-4", "true", duration=30 * 86400))
    assert not exc.value.retriable and len(exc.value.message) > 5


async def test_outage_is_down_and_submissions_fail_retriably(site: Site, adapter: AdapterBase) -> None:
    site.control("outage", {"component": "compute", "state": "down"})
    try:
        assert (await adapter.health()).state == "down"
        with pytest.raises(AdapterError) as exc:
            await adapter.submit(req(site, "contract-5", "true"))
        assert exc.value.retriable, exc.value
    finally:
        site.control("outage", {"component": "compute", "state": "up"})
    assert (await adapter.health()).state == "up"


async def test_errors_and_garbage_are_retriable(site: Site, adapter: AdapterBase) -> None:
    await adapter.health()
    site.control("chaos", {"error_rate": 1.0, "status": 503})
    with pytest.raises(AdapterError) as exc:
        await adapter.health()
    assert exc.value.retriable
    site.control("chaos", {"garbage_rate": 1.0})
    with pytest.raises(GarbageResponse):
        await adapter.statuses(["1"], SYSTEM[site.kind])


async def test_refused_credentials_are_an_auth_failure(site: Site, adapter: AdapterBase) -> None:
    site.control("credentials", {"valid": False})
    with pytest.raises(AuthFailed) as exc:
        await asyncio.wait_for(adapter.submit(req(site, "contract-6", "true")), 10)  # no loop
    assert not exc.value.retriable


async def test_tokens_revoked_mid_run_are_replaced(site: Site, adapter: AdapterBase) -> None:
    system = SYSTEM[site.kind]
    await adapter.statuses(["1"], system)
    site.control("credentials", {"revoke_tokens": True})
    await adapter.statuses(["1"], system)  # one refresh and one retry, transparently


async def test_small_files(site: Site, adapter: AdapterBase) -> None:
    system, home = SYSTEM[site.kind], HOME[site.kind]
    await adapter.write_file(f"{home}/contract.txt", b"contract bytes", system)
    assert await adapter.read_file(f"{home}/contract.txt", system, 1024) == b"contract bytes"
    entries = {e.name: e for e in await adapter.list_dir(home, system)}
    assert entries["contract.txt"].type == "file" and entries["contract.txt"].size == 14
    with pytest.raises(NotFound):
        await adapter.list_dir(f"{home}/no-such-dir", system)
    with pytest.raises(SiteRejected):
        await adapter.read_file(f"{home}/contract.txt", system, 4)


async def test_allocations_are_node_hours_or_unknown(site: Site, adapter: AdapterBase) -> None:
    allocations = await adapter.allocations()
    if site.kind == "firecrest":
        # FirecREST v2 has no accounting endpoint: userinfo's accounts, hours unknown
        by = {a.project: a for a in allocations}
        assert by["m0001"].unit == "unknown" and by["m0001"].note
    else:
        by = {a.project: a for a in allocations}
        assert by["m0001"].allocated > 0 and by["m0001"].unit == "node_hours"
