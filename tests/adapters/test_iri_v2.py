"""``IriAdapter`` against IRI v2 and against facilities that differ from the spec, over real
HTTP to the IRI simulator: version discovery, Idempotency-Key on submissions, lenient readers
(file content, status listings, allocation units).  Each test names the one-line bug it
catches."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from adapters.errors import NotFound, SiteOverloaded, SiteServerError
from adapters.http import HttpSettings
from adapters.iri import Auth, IriAdapter
from adapters.iri.vocab import file_bytes, idempotency_key, resource_kind
from adapters.psij import JobAttributes, JobSpec, ResourceSpec
from adapters.registry import build
from adapters.types import SubmitRequest
from simulators.common.facility import SimSettings
from simulators.iri import create_app
from tests.support.openapi import ValidatingASGI, load_spec
from tests.support.servers import ThreadedServer

pytestmark = pytest.mark.anyio
TOKEN = "v2-token"
HTTP = HttpSettings(retries=2, backoff_base=0.01, backoff_cap=0.05, read_timeout=5.0)
POLARIS = "55c1c993-1124-47f9-b823-514ba3849a9a"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[str, ValidatingASGI]]:
    settings = SimSettings(systems=["polaris"], nodes=4, time_scale=0.01, static_tokens=[TOKEN])
    # every v2 answer the adapter reads follows the v2 spec (v1 probes are not validated here)
    spec = load_spec("iri/all_spec_v2.yaml")
    wrapper = ValidatingASGI(create_app(settings), spec, skip_prefixes=("/_sim", "/api/v1"))
    with ThreadedServer(wrapper) as srv:
        yield srv.url, wrapper
    assert wrapper.errors == [] and wrapper.validated > 0


@pytest.fixture
def sim_url(sim: tuple[str, ValidatingASGI]) -> str:
    return sim[0]


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    (tmp_path / "token").write_text(TOKEN)
    return tmp_path / "token"


def control(url: str, what: str, body: dict[str, object] | None = None) -> dict[str, object]:
    r = httpx.post(f"{url}/_sim/{what}", json=body or {}, timeout=5)
    r.raise_for_status()
    return r.json()


def sim_jobs(url: str) -> list[dict[str, object]]:
    r = httpx.post(f"{url}/api/v2/compute/status/{POLARIS}", params={"historical": "true", "limit": 1000},
                   headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    r.raise_for_status()
    return r.json()


@pytest.fixture
async def adapter(sim_url: str, token_file: Path) -> AsyncIterator[IriAdapter]:
    control(sim_url, "reset")
    a = IriAdapter(name="iri2", url=sim_url, systems=["polaris"], auth=Auth(token_file=str(token_file)), http=HTTP)
    yield a
    await a.aclose()
    control(sim_url, "iri", {})
    control(sim_url, "reset")


def request(tag: str, script: str = "sleep 1000", attempt: int = 0) -> SubmitRequest:
    spec = JobSpec(
        executable="/bin/bash",
        arguments=["-lc", script],
        name="v2",
        resources=ResourceSpec(node_count=1),
        attributes=JobAttributes(duration=600, queue_name="debug", custom_attributes={"filesystems": "home"}),
    )
    return SubmitRequest(tag=tag, spec=spec, system="polaris", project="m0001", attempt=attempt)


# -- the version --------------------------------------------------------------------------
async def test_discovery_finds_v2_and_says_so_in_health(adapter: IriAdapter) -> None:
    """Catches: discovery probing v1 first (a dual server would be spoken to in v1), or the
    version left out of the site's status."""
    assert adapter.api_version is None
    health = await adapter.health()
    assert adapter.api_version == "v2"
    api = next(c for c in health.components if c.name == "api")
    assert api.state == "up" and api.detail == "IRI Facility API v2 (found at first contact)"
    assert health.state == "up"  # read from URN resource types: compute found


async def test_discovery_falls_back_to_v1_where_v2_is_404(token_file: Path) -> None:
    """ALCF today.  Catches: a 404 on /api/v2 taken as a failure instead of "speak v1"."""
    settings = SimSettings(systems=["polaris"], nodes=2, time_scale=0.01, static_tokens=[TOKEN])
    with ThreadedServer(create_app(settings, versions=("v1",))) as srv:
        a = build("iri", name="alcf", url=srv.url, systems=["polaris"], auth={"token_file": str(token_file)}, http=HTTP)
        receipt = await a.submit(request("v1-only", "sleep 1"))
        assert receipt.native_id and a.api_version == "v1"  # type: ignore[attr-defined]
        await a.aclose()


async def test_a_server_with_no_iri_api_is_not_found(token_file: Path) -> None:
    """Catches: discovery settling on a version nobody answered."""
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "Not Found"})

    client = httpx.AsyncClient(base_url="http://nowhere", transport=httpx.MockTransport(handler))
    a = IriAdapter(name="x", url="http://nowhere", systems=["polaris"], auth=Auth(token_file=str(token_file)),
                   http=HTTP, client=client)
    with pytest.raises(NotFound, match="neither /api/v2 nor /api/v1"):
        await a.health()
    await client.aclose()


async def test_version_from_config_or_url(sim_url: str, token_file: Path) -> None:
    """Catches: an /api/v1 URL suffix doubled (/api/v1/api/v1), or api_version ignored."""
    auth = {"token_file": str(token_file)}
    a = build("iri", name="a", url=f"{sim_url}/api/v1/", systems=["polaris"], auth=auth, http=HTTP)
    assert (await a.health()).state == "up" and a.api_version == "v1"  # type: ignore[attr-defined]
    assert next(c for c in (await a.health()).components if c.name == "api").detail.endswith("(named by the URL)")
    b = build("iri", name="b", url=sim_url, systems=["polaris"], auth=auth, http=HTTP, api_version="v1")
    assert b.api_version == "v1"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="names /api/v1 but api_version is v2"):
        build("iri", name="c", url=f"{sim_url}/api/v1", systems=["polaris"], auth=auth, api_version="v2")
    with pytest.raises(ValueError, match="sfapi sites speak one API version"):
        build("sfapi", name="d", url=sim_url, systems=["perlmutter"], auth={"access_token_env": "X"}, api_version="v2")
    for x in (a, b):
        await x.aclose()


# -- Idempotency-Key ----------------------------------------------------------------------
def test_idempotency_keys_are_stable_uuids() -> None:
    """Catches: a random key (a retry would make a second job) or one blind to system or attempt."""
    k = idempotency_key("job-1", "polaris", 0)
    assert k == idempotency_key("job-1", "polaris", 0) and len(k) == 36
    assert len({k, idempotency_key("job-2", "polaris", 0), idempotency_key("job-1", "aurora", 0),
                idempotency_key("job-1", "polaris", 1)}) == 4


async def test_a_retried_submission_never_makes_a_second_job(adapter: IriAdapter, sim_url: str) -> None:
    """The broker sends the same job again (its first answer was lost).  Catches: no key sent
    on v2 (two jobs)."""
    first = await adapter.submit(request("job-a"))
    again = await adapter.submit(request("job-a"))
    assert again.native_id == first.native_id
    assert len(sim_jobs(sim_url)) == 1
    other = await adapter.submit(request("job-a", attempt=1))  # a new attempt is a new job
    assert other.native_id != first.native_id and len(sim_jobs(sim_url)) == 2


async def test_a_lost_answer_is_resent_and_replayed(sim_url: str, token_file: Path) -> None:
    """The facility made the job but its answer never arrived (a 502 from a proxy): with a
    key, the adapter may resend, and the resend is a replay.  Catches: the keyed POST not
    marked idempotent (no resend: the broker sees an uncertain failure)."""
    control(sim_url, "reset")
    calls = 0

    async def drop_first_answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        async with httpx.AsyncClient() as real:
            resp = await real.send(httpx.Request(request.method, request.url, headers=request.headers,
                                                 content=request.content))
        if request.method == "POST" and "/compute/job/" in request.url.path:
            calls += 1
            if calls == 1:
                return httpx.Response(502, text="bad gateway")
        return httpx.Response(resp.status_code, headers=resp.headers, content=resp.content)

    client = httpx.AsyncClient(base_url=sim_url, transport=httpx.MockTransport(drop_first_answer))
    a = IriAdapter(name="p", url=sim_url, systems=["polaris"], auth=Auth(token_file=str(token_file)), http=HTTP,
                   client=client, api_version="v2")
    receipt = await a.submit(request("lost-answer"))
    assert calls == 2 and [j["id"] for j in sim_jobs(sim_url)] == [receipt.native_id]
    await a.aclose()
    await client.aclose()


async def test_in_flight_duplicate_is_overloaded_not_rejected(adapter: IriAdapter, sim_url: str) -> None:
    """Catches: the facility's 409 read as a refusal (the job would fail though it exists)."""
    control(sim_url, "iri", {"hold_submissions": True})
    first = asyncio.create_task(adapter.submit(request("held")))
    for _ in range(500):
        r = await asyncio.to_thread(httpx.get, f"{sim_url}/_sim/iri", timeout=5)
        if r.json()["in_flight"] == 1:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(SiteOverloaded) as err:
        await adapter.submit(request("held"))
    assert err.value.retriable and err.value.status == 409
    control(sim_url, "iri", {"hold_submissions": False})
    assert (await first).native_id == (await adapter.submit(request("held"))).native_id


async def test_same_key_with_another_body_is_uncertain(adapter: IriAdapter) -> None:
    """Catches: the 422 read as a refusal: an earlier try made the job, so the broker must
    settle by tag, not fail the job."""
    await adapter.submit(request("changed"))
    with pytest.raises(SiteServerError, match="another body") as err:
        await adapter.submit(request("changed", script="sleep 5"))
    assert err.value.retriable
    assert await adapter.find_by_tag("changed", "polaris") is not None


async def test_a_facility_without_an_idempotency_store(adapter: IriAdapter, sim_url: str) -> None:
    """The reference server without IRI_IDEMPOTENCY_STORE answers 501 to any key.  Catches:
    no fallback (every submission there would fail)."""
    control(sim_url, "iri", {"no_idempotency_store": True})
    first = await adapter.submit(request("no-store-1"))
    second = await adapter.submit(request("no-store-2"))
    assert first.native_id != second.native_id and len(sim_jobs(sim_url)) == 2


# -- lenient readers ----------------------------------------------------------------------
async def test_read_file_decodes_base64_without_an_encoding_key(adapter: IriAdapter) -> None:
    """v2's download answers base64 with no `encoding` key.  Catches: decoding only when the
    key says base64 (read_file would return the base64 text)."""
    data = bytes(range(256)) * 3
    await adapter.write_file("/home/superfed/b.bin", data, "polaris")
    assert await adapter.read_file("/home/superfed/b.bin", "polaris", 10_000) == data
    # text that happens to be well-formed base64 stays text: its size says so
    await adapter.write_file("/home/superfed/t.txt", b"abcd", "polaris")
    assert await adapter.read_file("/home/superfed/t.txt", "polaris", 100) == b"abcd"


def test_file_bytes_by_schema() -> None:
    """Catches: base64 assumed whenever the key is missing (text files garbled), or never."""
    assert file_bytes(base64.b64encode(b"\x00\x01").decode(), None, 2) == b"\x00\x01"
    assert file_bytes("abcd", None, 4) == b"abcd"  # valid base64, but 4 bytes of text
    assert file_bytes("hello world", None, None) == b"hello world"  # not base64 at all
    assert file_bytes("aGk=", "base64", None) == b"hi" and file_bytes("aGk=", "utf-8", 4) == b"aGk="


async def test_statuses_trim_and_page_when_the_facility_ignores_the_filter(adapter: IriAdapter, sim_url: str) -> None:
    """A facility that lists every job whatever the filter, three to a page.  Catches: no
    trimming (jobs never asked for come back) and no paging (jobs past the first page are
    never polled)."""
    ids = [(await adapter.submit(request(f"p{i}"))).native_id for i in range(8)]
    control(sim_url, "iri", {"ignore_job_filter": True, "page_cap": 3})
    asked = [ids[1], ids[5], ids[7]]
    got = await adapter.statuses(asked, "polaris")
    assert sorted(got) == sorted(asked)
    assert await adapter.find_by_tag("p6", "polaris") is not None  # find_by_tag pages too


async def test_allocations_read_urn_units_and_never_an_unknown_unit_as_zero(adapter: IriAdapter, sim_url: str) -> None:
    """Catches: v2's URN unit dropped or read as 0 node hours; an unknown unit read as node
    hours (or as zero) without a word."""
    [alloc] = [a for a in await adapter.allocations() if a.project == "m0001"]
    assert (alloc.unit, alloc.allocated, alloc.note) == ("node_hours", 10_000.0, None)
    control(sim_url, "iri", {"allocation_unit": "urn:doe-iri:allocation:compute:gpu-hours"})
    [odd] = [a for a in await adapter.allocations() if a.project == "m0001"]
    assert odd.unit == "unknown" and odd.allocated == 10_000.0
    assert odd.note is not None and "gpu-hours" in odd.note


def test_resource_kinds_from_words_and_urns() -> None:
    """Catches: only exact URNs known (a facility's subtype URN would hide its compute)."""
    assert resource_kind("compute") == resource_kind("urn:doe-iri:resource:compute") == "compute"
    assert resource_kind("urn:doe-iri:resource:compute:system") == "compute"
    assert resource_kind("urn:doe-iri:resource:storage:filesystem") == "storage"
    assert resource_kind("urn:doe-iri:service:generic") == "service"
    assert resource_kind("urn:example:thing") == resource_kind("gizmo") == "unknown"
