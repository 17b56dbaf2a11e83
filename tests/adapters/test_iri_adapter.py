"""``IriAdapter`` over real HTTP against the IRI simulator (ALCF): every interface method,
outages, chaos 503s and latency, garbage answers, refused tokens, qsub rejections."""

from __future__ import annotations

import asyncio
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
from adapters.iri import Auth, IriAdapter
from adapters.psij import JobAttributes, JobSpec, ResourceSpec
from adapters.registry import build
from adapters.types import FINAL_STATES, JobStatus, SubmitRequest
from simulators.common.facility import SimSettings
from simulators.iri import create_app
from tests.support.servers import ThreadedServer

pytestmark = pytest.mark.anyio
TOKEN = "globus-access-token"
FAST_HTTP = HttpSettings(retries=3, backoff_base=0.01, backoff_cap=0.05, read_timeout=5.0)
FS = {"filesystems": "home:eagle"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    settings = SimSettings(enforce_policy=False, systems=["polaris"], nodes=4, time_scale=0.01, static_tokens=[TOKEN])
    with ThreadedServer(create_app(settings)) as srv:
        yield srv.url


def control(url: str, what: str, body: dict | None = None) -> None:
    httpx.post(f"{url}/_sim/{what}", json=body or {}, timeout=5).raise_for_status()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "iri.token"
    path.write_text(TOKEN + "\n")
    return path


class Counter:
    def __init__(self) -> None:
        self.requests: list[str] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(f"{request.method} {request.url.path}")


@pytest.fixture(params=["v1", "v2"])
async def counted(
    sim_url: str, token_file: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[IriAdapter, Counter]]:
    control(sim_url, "reset")
    counter = Counter()
    client = httpx.AsyncClient(base_url=sim_url, event_hooks={"request": [counter]}, timeout=5)
    a = IriAdapter(
        name="alcf",
        url=sim_url,
        systems=["polaris"],
        auth=Auth(token_file=str(token_file)),
        http=FAST_HTTP,
        client=client,
        api_version=request.param,  # the simulator serves both: each test runs against each
    )
    try:
        yield a, counter
    finally:
        await a.aclose()
        await client.aclose()
        control(sim_url, "reset")


@pytest.fixture
async def adapter(counted: tuple[IriAdapter, Counter]) -> IriAdapter:
    return counted[0]


def request(tag: str, script: str = "sleep 1", **attrs: object) -> SubmitRequest:
    a = {"duration": 600, "queue_name": "debug", "custom_attributes": dict(FS), **attrs}
    spec = JobSpec(
        executable="/bin/bash",
        arguments=["-lc", script],
        name="demo",
        resources=ResourceSpec(node_count=1),
        attributes=JobAttributes(**a),
    )  # type: ignore[arg-type]
    return SubmitRequest(tag=tag, spec=spec, system="polaris", project="m0001")


async def until_final(a: IriAdapter, native_id: str, timeout: float = 5.0) -> JobStatus:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        st = (await a.statuses([native_id], "polaris"))[native_id]
        if st.state in FINAL_STATES or asyncio.get_running_loop().time() > deadline:
            return st
        await asyncio.sleep(0.02)


async def test_registry_builds_it_from_plain_config(sim_url: str, token_file: Path) -> None:
    a = build(
        "iri", name="alcf", url=sim_url, systems=["polaris"], auth={"token_file": str(token_file)}
    )
    assert isinstance(a, IriAdapter) and a.kind == "iri"
    assert (await a.health()).state == "up"
    await a.aclose()


async def test_health_follows_outages_and_incidents(adapter: IriAdapter, sim_url: str) -> None:
    h = await adapter.health()
    assert h.state == "up" and h.incidents == []
    assert {c.name: c.state for c in h.components} == {"compute": "up", "filesystem": "up", "api": "up"}
    control(sim_url, "outage", {"component": "compute", "state": "down", "note": "power"})
    h = await adapter.health()
    assert h.state == "down"
    assert [(i.component, i.kind, i.status) for i in h.incidents] == [
        ("compute", "unplanned", "unresolved")
    ]
    control(sim_url, "outage", {"component": "filesystem", "state": "degraded"})
    comps = {c.name: c.state for c in (await adapter.health()).components}
    assert comps == {"compute": "down", "filesystem": "degraded", "api": "up"}
    control(sim_url, "outage", {"component": "compute", "state": "up"})
    control(sim_url, "outage", {"component": "filesystem", "state": "up"})
    h = await adapter.health()
    assert h.state == "up" and h.incidents == []


async def test_submit_status_and_exit_code(adapter: IriAdapter) -> None:
    a = adapter
    receipt = await a.submit(request("job-1", "echo hi; sleep 2; exit 7"))
    assert receipt.system == "polaris" and ".polaris-pbs-01" in receipt.native_id
    st = await until_final(a, receipt.native_id)
    assert (st.state, st.native_state, st.exit_code, st.tag) == ("FAILED", "F", 7, "job-1")
    ok = await a.submit(request("job-2"))
    st = await until_final(a, ok.native_id)
    assert (st.state, st.exit_code) == ("COMPLETED", 0)
    assert await a.find_by_tag("job-2", "polaris") == ok
    assert await a.find_by_tag("nope", "polaris") is None


async def test_statuses_use_one_request_for_many_jobs(counted: tuple[IriAdapter, Counter]) -> None:
    a, counter = counted
    ids = [(await a.submit(request(f"t{i}", "sleep 1000"))).native_id for i in range(6)]
    counter.requests.clear()
    listing = f"POST /api/{a.api_version}/compute/status/55c1c993-1124-47f9-b823-514ba3849a9a"
    assert set(await a.statuses(ids, "polaris")) == set(ids)
    assert counter.requests == [listing]  # all found on the first page: done
    counter.requests.clear()
    states = await a.statuses([*ids, "999.unknown"], "polaris")
    # one id not found: the next page (empty) makes sure it is not merely past a page's end
    assert counter.requests == [listing, listing]
    assert set(states) == set(ids)  # the unknown id is left out, not completed
    assert sorted(s.state for s in states.values()) == ["ACTIVE"] * 4 + ["QUEUED"] * 2
    assert {s.native_state for s in states.values()} == {"R", "Q"}


async def test_cancel_running_queued_and_final(adapter: IriAdapter) -> None:
    running = (await adapter.submit(request("c1", "sleep 1000"))).native_id
    await adapter.cancel(running, "polaris")
    st = (await adapter.statuses([running], "polaris"))[running]
    assert (st.state, st.native_state, st.exit_code) == ("CANCELED", "F", 265)
    await adapter.cancel(running, "polaris")  # already final: fine
    with pytest.raises(NotFound):
        await adapter.cancel("4242.polaris-pbs-01", "polaris")


async def test_qsub_rejections_surface_their_message(adapter: IriAdapter) -> None:
    with pytest.raises(SiteRejected) as exc:
        await adapter.submit(request("r1", custom_attributes={}))
    assert exc.value.message == "qsub: Resource: filesystems is required to be set."
    assert not exc.value.retriable
    with pytest.raises(SiteRejected) as exc:
        await adapter.submit(request("r2", duration=7200))
    assert exc.value.message == "qsub: Job rejected by all possible destinations"
    with pytest.raises(NotFound):
        await adapter.submit(
            SubmitRequest(tag="x", spec=request("x").spec, system="aurora", project="m0001")
        )


async def test_outage_makes_submission_component_down(adapter: IriAdapter, sim_url: str) -> None:
    control(sim_url, "outage", {"component": "compute", "state": "down"})
    with pytest.raises(ComponentDown) as exc:
        await adapter.submit(request("o1"))
    assert exc.value.retriable and "polaris is down" in exc.value.message
    control(sim_url, "outage", {"component": "filesystem", "state": "down"})
    with pytest.raises(ComponentDown):
        await adapter.list_dir("/eagle/m0001", "polaris")


async def test_files_through_tasks(adapter: IriAdapter) -> None:
    payload = bytes(range(256)) * 3
    await adapter.write_file("/eagle/m0001/data.bin", payload, "polaris")
    await adapter.write_file("/home/superfed/.hidden", b"x", "polaris")
    entries = {e.name: e for e in await adapter.list_dir("/lus/eagle/m0001", "polaris")}
    assert entries["data.bin"].type == "file" and entries["data.bin"].size == len(payload)
    assert entries["data.bin"].permissions == "rw-r--r--" and entries["data.bin"].mtime
    assert [e.name for e in await adapter.list_dir("/home/superfed", "polaris")] == [".hidden"]
    assert await adapter.read_file("/eagle/m0001/data.bin", "polaris", max_bytes=10_000) == payload
    with pytest.raises(SiteRejected):
        await adapter.read_file("/eagle/m0001/data.bin", "polaris", max_bytes=100)
    with pytest.raises(NotFound):
        await adapter.read_file("/eagle/m0001/nothing", "polaris", max_bytes=100)
    with pytest.raises(NotFound):
        await adapter.list_dir("/scratch/x", "polaris")  # no such filesystem resource


async def test_allocations_from_the_account_endpoints(adapter: IriAdapter) -> None:
    allocs = {a.project: a for a in await adapter.allocations()}
    assert set(allocs) == {"m0001", "m0002"}
    assert allocs["m0001"].allocated == 10_000.0 and allocs["m0001"].unit == "node_hours"
    job = await adapter.submit(request("a1", "sleep 360"))
    await asyncio.sleep(0.05)
    await adapter.cancel(job.native_id, "polaris")
    assert {a.project: a for a in await adapter.allocations()}["m0001"].used > 0


async def test_chaos_503s_are_retried_then_overloaded(
    counted: tuple[IriAdapter, Counter], sim_url: str
) -> None:
    a, counter = counted
    await a.health()  # resolve resources first
    control(sim_url, "chaos", {"error_rate": 1.0, "status": 503})
    counter.requests.clear()
    with pytest.raises(SiteOverloaded) as exc:
        await a.statuses(["1"], "polaris")
    assert exc.value.retriable and len(counter.requests) == 1 + FAST_HTTP.retries
    with pytest.raises(SiteOverloaded):
        await a.submit(request("chaos"))  # a 503 that is not an outage
    # retries absorb a flaky facility (kept rare enough that every retry failing, which
    # would make this test flaky, is a one-in-ten-thousand event per request)
    control(sim_url, "chaos", {"error_rate": 0.1, "status": 503})
    for _ in range(5):
        assert (await a.health()).state == "up"


async def test_latency_beyond_the_timeout(sim_url: str, token_file: Path) -> None:
    control(sim_url, "reset")
    a = IriAdapter(
        name="alcf",
        url=sim_url,
        systems=["polaris"],
        auth=Auth(token_file=str(token_file)),
        http=HttpSettings(retries=0, read_timeout=0.1),
    )
    try:
        control(sim_url, "chaos", {"latency_ms": 50})
        assert (await a.health()).state == "up"  # slow but in time
        control(sim_url, "chaos", {"latency_ms": 400})
        with pytest.raises(SiteTimeout):
            await a.health()
    finally:
        await a.aclose()
        control(sim_url, "reset")


async def test_garbage_answers(adapter: IriAdapter, sim_url: str) -> None:
    await adapter.health()
    control(sim_url, "chaos", {"garbage_rate": 1.0})
    for call in (
        adapter.health(),
        adapter.statuses(["1"], "polaris"),
        adapter.allocations(),
        adapter.submit(request("g")),
    ):
        with pytest.raises(GarbageResponse):
            await call


async def test_revoked_token_is_auth_failed_without_looping(
    counted: tuple[IriAdapter, Counter], sim_url: str
) -> None:
    a, counter = counted
    await a.health()
    control(sim_url, "credentials", {"valid": False})
    counter.requests.clear()
    with pytest.raises(AuthFailed) as exc:
        await a.allocations()
    assert exc.value.message.startswith("bearer token refused: expired or revoked")
    assert "revoked" in exc.value.message and TOKEN not in str(exc.value)
    assert len(counter.requests) == 2  # the request, one re-read of the token, one retry
    assert a.tokens.refreshes == 2
    assert (await a.health()).state == "up"  # status is public: health does not need the token


async def test_a_token_refreshed_on_disk_is_picked_up(
    counted: tuple[IriAdapter, Counter], token_file: Path, sim_url: str
) -> None:
    a, _ = counted
    token_file.write_text("stale-token")
    with pytest.raises(AuthFailed):
        await a.allocations()
    token_file.write_text(TOKEN)  # e.g. ALCF's helper script wrote a fresh one
    assert len(await a.allocations()) == 2


async def test_missing_token_source(sim_url: str, tmp_path: Path) -> None:
    a = IriAdapter(
        name="alcf", url=sim_url, systems=["polaris"], auth=Auth(token_file=str(tmp_path / "none"))
    )
    with pytest.raises(AuthFailed) as exc:
        await a.allocations()
    assert "cannot read IRI bearer token" in exc.value.message
    await a.aclose()
