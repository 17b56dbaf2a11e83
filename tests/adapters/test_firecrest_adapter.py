"""FirecrestAdapter over real HTTP against the FirecREST v2 simulator: the whole interface,
outages, chaos, garbage, token revocation and refused credentials."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.errors import AuthFailed, GarbageResponse, NotFound, SiteOverloaded, SiteRejected
from adapters.firecrest import Auth, FirecrestAdapter
from adapters.http import HttpSettings
from adapters.psij import JobAttributes, JobSpec, ResourceSpec
from adapters.types import FINAL_STATES, SubmitRequest
from simulators.common.facility import SimSettings
from simulators.firecrest import create_app
from tests.support.servers import ThreadedServer

pytestmark = pytest.mark.anyio
CLIENT_ID, SECRET, USER = "superfed-broker", "t0p-secret", "carol"
FAST = HttpSettings(retries=2, backoff_base=0.01, backoff_cap=0.05, read_timeout=5)


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    settings = SimSettings(enforce_policy=False,
        systems=["daint", "eiger"],
        nodes=8,
        time_scale=0.01,
        user=USER,
        client_id=CLIENT_ID,
        client_secret=SECRET,
    )
    with ThreadedServer(create_app(settings)) as srv:
        yield srv.url


@pytest.fixture
def control(sim_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sim_url}/_sim", timeout=10) as c:
        c.post("/reset").raise_for_status()
        yield c
        c.post("/reset").raise_for_status()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    p = tmp_path / "secret"
    p.write_text(SECRET + "\n")
    return p


def make(sim_url: str, secret_file: Path, **auth: Any) -> FirecrestAdapter:
    a = Auth(
        client_id=CLIENT_ID, token_url=f"{sim_url}/auth/token", client_secret_file=str(secret_file)
    )
    if auth:
        a = Auth(**{"client_id": CLIENT_ID, "token_url": f"{sim_url}/auth/token", **auth})
    return FirecrestAdapter(name="cscs", url=sim_url, systems=["daint", "eiger"], auth=a, http=FAST)


@pytest.fixture
async def adapter(
    sim_url: str, secret_file: Path, control: httpx.Client
) -> AsyncIterator[FirecrestAdapter]:
    a = make(sim_url, secret_file)
    yield a
    await a.aclose()


def req(tag: str, command: str = "sleep 1", **attrs: Any) -> SubmitRequest:
    spec = JobSpec(
        executable="/bin/bash",
        arguments=["-c", command],
        name=f"job {tag}",
        resources=ResourceSpec(node_count=1),
        attributes=JobAttributes(**attrs),
    )
    return SubmitRequest(tag=tag, spec=spec, system="daint", project="m0001")


async def wait_final(a: FirecrestAdapter, native_id: str, timeout: float = 10) -> Any:
    import anyio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = (await a.statuses([native_id], "daint")).get(native_id)
        if st is not None and st.state in FINAL_STATES:
            return st
        await anyio.sleep(0.05)
    raise AssertionError(f"job {native_id} did not finish")


async def test_full_interface(adapter: FirecrestAdapter) -> None:
    health = await adapter.health()
    assert health.state == "up"
    assert {c.name for c in health.components} == {"compute", "login", "filesystem"}

    receipt = await adapter.submit(req("T-ok", "sleep 2; exit 0", duration=600))
    assert receipt.system == "daint" and receipt.native_id.isdigit()
    assert await adapter.find_by_tag("T-ok", "daint") == receipt
    assert await adapter.find_by_tag("T-nope", "daint") is None
    done = await wait_final(adapter, receipt.native_id)
    assert (done.state, done.exit_code, done.tag) == ("COMPLETED", 0, "T-ok")

    failing = await adapter.submit(req("T-fail", "exit 7"))
    st = await wait_final(adapter, failing.native_id)
    assert (st.state, st.exit_code, st.native_state) == ("FAILED", 7, "FAILED")

    long = await adapter.submit(req("T-cancel", "sleep 100000"))
    await adapter.cancel(long.native_id, "daint")
    st = await wait_final(adapter, long.native_id)
    assert st.state == "CANCELED" and st.native_state.startswith("CANCELLED by")
    await adapter.cancel(long.native_id, "daint")  # already final: fine
    with pytest.raises(NotFound):
        await adapter.cancel("987654321", "daint")

    many = await adapter.statuses([receipt.native_id, failing.native_id, "123456789"], "daint")
    assert set(many) == {receipt.native_id, failing.native_id}  # unknown ids are left out

    home = f"/home/{USER}"
    await adapter.write_file(f"{home}/data.txt", b"payload\n", "daint")
    entries = {e.name: e for e in await adapter.list_dir(home, "daint")}
    assert entries["data.txt"].type == "file" and entries["data.txt"].size == 8
    assert entries[".bashrc"].permissions == "rw-r--r--"
    assert f"slurm-{receipt.native_id}.out" in entries  # the job's output landed in the home
    assert await adapter.read_file(f"{home}/data.txt", "daint", 1024) == b"payload\n"
    with pytest.raises(SiteRejected):
        await adapter.read_file(f"{home}/data.txt", "daint", 3)
    with pytest.raises(NotFound):
        await adapter.read_file(f"{home}/missing", "daint", 100)
    # no accounting endpoint: the accounts userinfo lists, hours unknown
    assert [(a.project, a.unit) for a in await adapter.allocations()] == [("m0001", "unknown"), ("m0002", "unknown")]
    with pytest.raises(NotFound):
        await adapter.statuses(["1"], "nosuch")
    assert adapter.tokens.refreshes == 1  # one token served all of it


async def test_rejection_surfaces_firecrests_message(adapter: FirecrestAdapter) -> None:
    with pytest.raises(SiteRejected) as err:
        await adapter.submit(req("T-long", queue_name="debug", duration=3 * 3600))
    assert "Requested time limit is invalid" in err.value.message
    assert not err.value.retriable
    with pytest.raises(SiteRejected, match="invalid partition specified: nosuch"):
        await adapter.submit(req("T-part", queue_name="nosuch"))


async def test_compute_outage(adapter: FirecrestAdapter, control: httpx.Client) -> None:
    control.post(
        "/outage", json={"component": "compute", "state": "down", "note": "planned maintenance"}
    )
    health = await adapter.health()
    comp = {c.name: c for c in health.components}["compute"]
    assert health.state == "down" and comp.state == "down" and "planned maintenance" in comp.detail
    with pytest.raises(SiteOverloaded) as err:
        await adapter.submit(req("T-down"))
    assert err.value.retriable and "scheduler service" in err.value.message
    control.post("/outage", json={"component": "compute", "state": "degraded"})
    assert (await adapter.health()).state == "degraded"
    control.post("/outage", json={"component": "filesystem", "state": "down"})
    with pytest.raises(SiteOverloaded):
        await adapter.list_dir(f"/home/{USER}", "daint")


async def test_chaos_503_and_latency(adapter: FirecrestAdapter, control: httpx.Client) -> None:
    control.post("/chaos", json={"error_rate": 1.0, "status": 503})
    with pytest.raises(SiteOverloaded, match="Service temporarily unavailable"):
        await adapter.health()
    control.post("/chaos", json={"latency_ms": 150})
    assert (await adapter.health()).state == "up"  # latency alone (under the read timeout) is no failure
    control.post("/chaos", json={"error_rate": 0.5, "status": 503})
    ok = 0
    for _ in range(6):  # idempotent reads ride out a flaky facility through retries, mostly
        try:
            await adapter.health()
            ok += 1
        except SiteOverloaded:
            pass
    assert ok >= 1  # all six failing three tries each: p = 0.5**18


async def test_short_tokens_are_never_sent_near_expiry(secret_file: Path) -> None:
    """FirecREST v2 refuses tokens with < 30 s left; the adapter refreshes 60 s ahead, so with
    50 s tokens it asks for a fresh one each time and is never refused."""
    settings = SimSettings(enforce_policy=False,
        systems=["daint"], user=USER, client_id=CLIENT_ID, client_secret=SECRET, token_ttl=50
    )
    with ThreadedServer(create_app(settings)) as srv:
        a = make(srv.url, secret_file)
        a.systems = ["daint"]
        for _ in range(3):
            assert (await a.health()).state == "up"
        assert a.tokens.refreshes == 3
        await a.aclose()


async def test_garbage_answers(adapter: FirecrestAdapter, control: httpx.Client) -> None:
    await adapter.health()  # a token first: the token endpoint is not behind the chaos
    control.post("/chaos", json={"garbage_rate": 1.0})
    for _ in range(3):
        with pytest.raises(GarbageResponse):
            await adapter.health()
    with pytest.raises(GarbageResponse):
        await adapter.statuses(["1"], "daint")


async def test_tokens_revoked_mid_run_refresh_once(
    adapter: FirecrestAdapter, control: httpx.Client
) -> None:
    await adapter.health()
    assert adapter.tokens.refreshes == 1
    control.post("/credentials", json={"revoke_tokens": True})
    assert (await adapter.health()).state == "up"
    assert adapter.tokens.refreshes == 2


async def test_invalid_credentials_fail_without_looping(
    adapter: FirecrestAdapter, control: httpx.Client
) -> None:
    await adapter.health()
    control.post("/credentials", json={"valid": False})
    with pytest.raises(AuthFailed, match="token endpoint refused client"):
        await adapter.health()
    assert adapter.tokens.refreshes == 1  # one failed fetch, no loop
    with pytest.raises(AuthFailed):
        await adapter.submit(req("T-auth"))


async def test_wrong_secret_and_missing_secret(
    sim_url: str, tmp_path: Path, control: httpx.Client
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    a = make(sim_url, wrong)
    with pytest.raises(AuthFailed, match="unauthorized_client"):
        await a.health()
    await a.aclose()
    b = make(sim_url, tmp_path, client_secret_env="SUPERFED_TEST_NO_SUCH_VAR")
    with pytest.raises(AuthFailed, match="SUPERFED_TEST_NO_SUCH_VAR"):
        await b.health()
    await b.aclose()


async def test_secret_from_environment(
    sim_url: str, tmp_path: Path, control: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPERFED_TEST_FC_SECRET", SECRET)
    a = make(sim_url, tmp_path, client_secret_env="SUPERFED_TEST_FC_SECRET")
    assert (await a.health()).state == "up"
    assert "t0p" not in repr(a) and "t0p" not in repr(a.auth)
    await a.aclose()
