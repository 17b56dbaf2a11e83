"""``SfapiAdapter`` over real HTTP against the SF API simulator: every interface method,
faults (503s, latency, garbage), token revocation and refused credentials."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from adapters.errors import (
    AuthFailed,
    ComponentDown,
    GarbageResponse,
    NotFound,
    SiteOverloaded,
    SiteRejected,
    SiteTimeout,
)
from adapters.http import HttpSettings
from adapters.psij import JobAttributes, JobSpec, ResourceSpec
from adapters.registry import build
from adapters.sfapi import Auth, SfapiAdapter
from adapters.types import FINAL_STATES, JobStatus, SubmitRequest
from tests.support.sfapi import CLIENT_ID, HOME, SfapiSim, running_sim

pytestmark = pytest.mark.anyio
FAST_HTTP = HttpSettings(retries=6, backoff_base=0.01, backoff_cap=0.05, read_timeout=5.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def sim() -> Iterator[SfapiSim]:
    yield from running_sim()


@pytest.fixture
def key_file(sim: SfapiSim, tmp_path: Path) -> Path:
    path = tmp_path / "sfapi.pem"
    path.write_text(sim.private_pem)
    path.chmod(0o600)
    return path


@pytest.fixture
async def adapter(sim: SfapiSim, key_file: Path) -> AsyncIterator[SfapiAdapter]:
    sim.control("reset")
    a = SfapiAdapter(
        name="nersc",
        url=sim.url,  # the adapter adds /api/v1.2
        systems=["perlmutter"],
        auth=Auth(client_id=CLIENT_ID, private_key_file=str(key_file)),
        http=FAST_HTTP,
    )
    yield a
    await a.aclose()
    sim.control("chaos", {})


def request(
    tag: str, command: str, *, duration: int = 600, nodes: int = 1, project: str = "m0001"
) -> SubmitRequest:
    spec = JobSpec(
        executable="/bin/bash",
        arguments=["-c", command],
        resources=ResourceSpec(node_count=nodes),
        attributes=JobAttributes(duration=duration),
    )
    return SubmitRequest(tag=tag, spec=spec, system="perlmutter", project=project)


async def wait_final(a: SfapiAdapter, native_id: str, tries: int = 200) -> JobStatus:
    import asyncio

    for _ in range(tries):
        st = (await a.statuses([native_id], "perlmutter")).get(native_id)
        if st is not None and st.state in FINAL_STATES:
            return st
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {native_id} never finished")


async def test_registry_builds_it(sim: SfapiSim, key_file: Path) -> None:
    a = build(
        "sfapi",
        name="n",
        url=f"{sim.url}/api/v1.2",
        systems=["perlmutter"],
        auth={"client_id": CLIENT_ID, "private_key_file": str(key_file)},
    )
    assert isinstance(a, SfapiAdapter) and a.token_url == f"{sim.url}/c2id/token"
    await a.aclose()


async def test_health_up(adapter: SfapiAdapter) -> None:
    h = await adapter.health()
    assert h.state == "up"
    states = {c.name: c.state for c in h.components}
    assert states == {"compute": "up", "filesystem": "up", "storage": "up", "login": "up"}
    assert [i.kind for i in h.incidents] == ["planned"]  # the next scheduled maintenance


async def test_health_degraded_and_down(sim: SfapiSim, adapter: SfapiAdapter) -> None:
    sim.control("outage", {"component": "filesystem", "state": "degraded"})
    h = await adapter.health()
    assert h.state == "up"
    fs = next(c for c in h.components if c.name == "filesystem")
    assert fs.state == "degraded" and "global_homes" in fs.detail
    sim.control("outage", {"component": "compute", "state": "degraded"})
    assert (await adapter.health()).state == "degraded"
    sim.control("outage", {"component": "compute", "state": "down", "note": "power work"})
    h = await adapter.health()
    assert h.state == "down"
    active = [i for i in h.incidents if i.status == "active" and i.component == "compute"]
    assert len(active) == 1 and "power work" in active[0].summary and active[0].kind == "unplanned"


async def test_submit_statuses_and_exit_code(adapter: SfapiAdapter) -> None:
    ok = await adapter.submit(request("job-ok", "sleep 10; echo done"))
    bad = await adapter.submit(request("job-bad", "sleep 5; exit 3"))
    assert ok.system == "perlmutter" and ok.native_id.isdigit()
    first = await adapter.statuses([ok.native_id, bad.native_id, "999999999"], "perlmutter")
    assert set(first) == {ok.native_id, bad.native_id}  # unknown ids are simply absent
    assert first[ok.native_id].tag == "job-ok"
    assert first[ok.native_id].state in ("QUEUED", "ACTIVE", "COMPLETED")
    done, failed = await wait_final(adapter, ok.native_id), await wait_final(adapter, bad.native_id)
    assert (done.state, done.native_state, done.exit_code) == ("COMPLETED", "COMPLETED", 0)
    assert (failed.state, failed.native_state, failed.exit_code) == ("FAILED", "FAILED", 3)
    assert await adapter.statuses([], "perlmutter") == {}


async def test_find_by_tag(adapter: SfapiAdapter) -> None:
    receipt = await adapter.submit(request("tag-123", "sleep 1000"))
    assert await adapter.find_by_tag("tag-123", "perlmutter") == receipt
    assert await adapter.find_by_tag("tag-nope", "perlmutter") is None


async def test_cancel(adapter: SfapiAdapter) -> None:
    receipt = await adapter.submit(request("to-cancel", "sleep 100000"))
    await adapter.cancel(receipt.native_id, "perlmutter")
    st = await wait_final(adapter, receipt.native_id)
    assert st.state == "CANCELED" and st.native_state.startswith("CANCELLED by ")
    await adapter.cancel(receipt.native_id, "perlmutter")  # already final: fine
    with pytest.raises(NotFound):
        await adapter.cancel("999999999", "perlmutter")


async def test_files(adapter: SfapiAdapter) -> None:
    await adapter.write_file(f"{HOME}/in/../data.bin", b"\x00\x01superfed", "perlmutter")
    entries = {e.name: e for e in await adapter.list_dir(HOME, "perlmutter")}
    assert entries["data.bin"].type == "file" and entries["data.bin"].size == 10
    assert entries["data.bin"].permissions == "rw-r--r--"
    assert await adapter.read_file(f"{HOME}/data.bin", "perlmutter", 100) == b"\x00\x01superfed"
    [single] = await adapter.list_dir(f"{HOME}/data.bin", "perlmutter")
    assert single.name == "data.bin"
    with pytest.raises(SiteRejected, match="limit"):
        await adapter.read_file(f"{HOME}/data.bin", "perlmutter", 4)
    with pytest.raises(NotFound, match="No such file or directory"):
        await adapter.list_dir(f"{HOME}/missing", "perlmutter")
    with pytest.raises(NotFound):
        await adapter.write_file("/no/such/dir/x", b"x", "perlmutter")


async def test_allocations_follow_accounting(adapter: SfapiAdapter) -> None:
    before = {a.project: a for a in await adapter.allocations()}
    assert before["m0001"].allocated == 10_000.0 and before["m0001"].used == 0.0
    assert before["m0001"].unit == "node_hours"
    receipt = await adapter.submit(request("acct", "sleep 50", nodes=2))
    await wait_final(adapter, receipt.native_id)
    after = {a.project: a for a in await adapter.allocations()}
    assert after["m0001"].used > 0.0 and after["m0002"].used == 0.0


async def test_rejection_carries_sbatchs_message(adapter: SfapiAdapter) -> None:
    with pytest.raises(
        SiteRejected, match="sbatch: error: Batch job submission failed: Requested time limit"
    ):
        await adapter.submit(request("too-long", "echo", duration=3 * 86400))
    with pytest.raises(SiteRejected, match="Invalid account"):
        await adapter.submit(request("bad-acct", "echo", project="nosuch"))


async def test_compute_down_is_retriable(sim: SfapiSim, adapter: SfapiAdapter) -> None:
    sim.control("outage", {"component": "compute", "state": "down"})
    with pytest.raises(ComponentDown, match="Unable to contact slurm controller") as info:
        await adapter.submit(request("down", "echo"))
    assert info.value.retriable


async def test_chaos_503s_are_retried(sim: SfapiSim, adapter: SfapiAdapter) -> None:
    sim.control("chaos", {"error_rate": 0.3, "status": 503})
    for _ in range(5):
        assert (await adapter.health()).state == "up"
    receipt_ids = []
    sim.control("chaos", {})
    receipt_ids.append((await adapter.submit(request("c1", "echo"))).native_id)
    sim.control("chaos", {"error_rate": 0.3, "status": 503})
    for _ in range(5):
        assert set(await adapter.statuses(receipt_ids, "perlmutter")) == set(receipt_ids)
    sim.control("chaos", {"error_rate": 1.0, "status": 503, "retry_after": 0})
    with pytest.raises(SiteOverloaded) as info:
        await adapter.allocations()
    assert info.value.retriable


async def test_latency_times_out_retriably(sim: SfapiSim, adapter: SfapiAdapter) -> None:
    await adapter.allocations()  # token in hand
    sim.control("chaos", {"latency_ms": 400})
    slow = SfapiAdapter(
        name="nersc",
        url=sim.url,
        systems=["perlmutter"],
        auth=adapter.auth,
        http=HttpSettings(retries=1, read_timeout=0.1, backoff_base=0.01),
    )
    try:
        with pytest.raises(SiteTimeout) as info:
            await slow.health()
        assert info.value.retriable
    finally:
        await slow.aclose()
    assert (await adapter.health()).state == "up"  # slow but within its timeout


async def test_garbage_is_a_garbage_response(sim: SfapiSim, adapter: SfapiAdapter) -> None:
    sim.control("chaos", {"garbage_rate": 1.0})
    for call in (adapter.health(), adapter.statuses(["1"], "perlmutter"), adapter.allocations()):
        with pytest.raises(GarbageResponse) as info:
            await call
        assert info.value.retriable


async def test_revoked_tokens_are_refreshed_once(sim: SfapiSim, adapter: SfapiAdapter) -> None:
    await adapter.allocations()
    assert adapter.tokens.refreshes == 1
    sim.control("credentials", {"revoke_tokens": True})
    assert len(await adapter.allocations()) == 2
    assert adapter.tokens.refreshes == 2


async def test_invalid_credentials_fail_without_looping(sim: SfapiSim, key_file: Path) -> None:
    sim.control("reset")
    token_calls = 0

    async def count(req: httpx.Request) -> None:
        nonlocal token_calls
        token_calls += req.url.path == "/c2id/token"

    client = httpx.AsyncClient(event_hooks={"request": [count]})
    a = SfapiAdapter(
        name="nersc",
        url=sim.url,
        systems=["perlmutter"],
        http=FAST_HTTP,
        client=client,
        auth=Auth(client_id=CLIENT_ID, private_key_file=str(key_file)),
    )
    try:
        await a.allocations()
        sim.control("credentials", {"valid": False})
        with pytest.raises(
            AuthFailed, match="client credentials refused by the token endpoint: invalid_client"
        ):
            await a.allocations()
        assert token_calls == 2  # the first token, then one refused refresh
    finally:
        await client.aclose()
        sim.control("reset")


async def test_wrong_key_is_auth_failed(sim: SfapiSim, tmp_path: Path) -> None:
    from tests.support.sfapi import rsa_keypair

    other, _ = rsa_keypair()
    path = tmp_path / "other.pem"
    path.write_text(f"{CLIENT_ID}\n{other}")  # sfapi_client's key file: client id, then the PEM
    a = SfapiAdapter(
        name="nersc",
        url=sim.url,
        systems=["perlmutter"],
        http=FAST_HTTP,
        auth=Auth(private_key_file=str(path)),
    )
    try:
        with pytest.raises(AuthFailed, match="invalid_client"):
            await a.allocations()
    finally:
        await a.aclose()


async def test_jwk_key_and_static_token(sim: SfapiSim, tmp_path: Path) -> None:
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(sim.private_pem.encode(), None)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))  # type: ignore[arg-type]
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"client_id": CLIENT_ID, "secret": jwk}))
    a = SfapiAdapter(
        name="nersc",
        url=sim.url,
        systems=["perlmutter"],
        http=FAST_HTTP,
        auth=Auth(private_key_file=str(path)),
    )
    try:
        assert len(await a.allocations()) == 2
        token = (await a.tokens.get()).reveal()
    finally:
        await a.aclose()
    os.environ["SFAPI_TEST_TOKEN"] = token
    b = SfapiAdapter(
        name="nersc",
        url=sim.url,
        systems=["perlmutter"],
        http=FAST_HTTP,
        auth=Auth(access_token_env="SFAPI_TEST_TOKEN"),
    )
    try:
        assert len(await b.allocations()) == 2
    finally:
        await b.aclose()
        del os.environ["SFAPI_TEST_TOKEN"]
