"""The IRI simulator's v2 (``/api/v2``) over real HTTP, every answer validated against the IRI
v2 OpenAPI spec (openapi-core), as test_iri_sim.py does for v1.  Here: what v2 changed (URN
vocabularies, POST filesystem reads, Idempotency-Key) and the reference server's answers."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.common.facility import SimSettings
from simulators.iri import create_app
from tests.support.openapi import ValidatingASGI, load_spec
from tests.support.servers import ThreadedServer

TOKEN = "iri-v2-token"
POLARIS = "55c1c993-1124-47f9-b823-514ba3849a9a"
HOME = "6115bd2c-957a-4543-abff-5fae52992ff2"
V2 = "/api/v2"
COMPUTE, STORAGE = "urn:doe-iri:resource:compute", "urn:doe-iri:resource:storage"
NODE_HOURS = "urn:doe-iri:allocation:compute:node-hours"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, ValidatingASGI]]:
    settings = SimSettings(systems=["polaris"], nodes=4, time_scale=0.01, static_tokens=[TOKEN])
    spec = load_spec("iri/all_spec_v2.yaml")
    wrapper = ValidatingASGI(create_app(settings), spec, skip_prefixes=("/_sim", "/api/v1"))
    with ThreadedServer(wrapper) as srv:
        yield srv.url, wrapper
    assert wrapper.errors == []
    assert wrapper.validated > 0


@pytest.fixture
def http(server: tuple[str, ValidatingASGI]) -> Iterator[httpx.Client]:
    url, wrapper = server
    with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        c.post("/_sim/reset").raise_for_status()
        yield c
    assert wrapper.errors == [], wrapper.errors


def spec_body(script: str = "sleep 1", **attrs: Any) -> dict[str, Any]:
    return {
        "executable": "/bin/bash",
        "arguments": ["-lc", script],
        "name": "v2job",
        "resources": {"node_count": 1},
        "attributes": {"duration": 600, "account": "m0001", "queue_name": "debug",
                       "custom_attributes": {"filesystems": "home"}, **attrs},
    }


def run_task(c: httpx.Client, r: httpx.Response) -> dict[str, Any]:
    assert r.status_code in (200, 201), r.text
    ref = r.json()
    api = r.request.url.path[:7]  # the task is under the version that made it
    assert ref["task_uri"].endswith(f"{api}/task/{ref['task_id']}")
    deadline = time.monotonic() + 5
    while (t := c.get(f"{api}/task/{ref['task_id']}").json())["status"] == "pending":
        assert time.monotonic() < deadline, t
        time.sleep(0.01)
    assert t["status"] == "completed", t
    return t["result"]


def jobs_named(c: httpx.Client, name: str) -> list[dict[str, Any]]:
    r = c.post(f"{V2}/compute/status/{POLARIS}", params={"historical": "true"}, json={"name": name})
    assert r.status_code == 200, r.text
    return r.json()


def test_resource_types_are_urns_and_filter_by_parent_urn(http: httpx.Client) -> None:
    """Catches: v2 answering v1's words ("compute"), or a prefix filter that is not by segment."""
    types = {r["name"]: r["resource_type"] for r in http.get(f"{V2}/status/resources").json()}
    assert types == {"polaris": COMPUTE, "eagle": STORAGE, "home": STORAGE}
    assert http.get("/api/v1/status/resources").json()[0]["resource_type"] == "compute"  # v1 unchanged
    urn = [r["name"] for r in http.get(f"{V2}/status/resources", params={"resource_type": COMPUTE}).json()]
    assert urn == ["polaris"]
    storage = http.get(f"{V2}/status/resources", params={"resource_type": STORAGE}).json()
    assert sorted(r["name"] for r in storage) == ["eagle", "home"]
    child = http.get(f"{V2}/status/resources", params={"resource_type": f"{COMPUTE}:system"}).json()
    assert child == []  # a child URN matches only that type
    r = http.get(f"{V2}/status/resources", params={"resource_type": "compute"})  # v1's word
    assert r.status_code == 400 and r.json()["invalid_params"][0]["name"] == "resource_type"


def test_allocation_units_are_urns(http: httpx.Client) -> None:
    """Catches: v2 allocations or capabilities in v1's node_hours."""
    entries = http.get(f"{V2}/account/projects/m0001/project_allocations").json()[0]["entries"]
    assert entries[0]["unit"] == NODE_HOURS and entries[0]["allocation"] > 0
    caps = {c["id"]: c["units"] for c in http.get(f"{V2}/account/capabilities").json()}
    assert caps["polaris-compute"] == [NODE_HOURS]
    assert caps["eagle-storage"] == ["urn:doe-iri:allocation:storage:bytes", "urn:doe-iri:allocation:storage:inodes"]
    by_unit = http.get(f"{V2}/status/resources", params={"capability": NODE_HOURS}).json()
    assert [r["name"] for r in by_unit] == ["polaris"]
    assert http.get(f"{V2}/status/resources", params={"capability": "node_hours"}).status_code == 400


def test_filesystem_reads_are_post_with_a_json_body_and_get_is_405(http: httpx.Client) -> None:
    """Catches: v2 reads left on GET (what a v1 client sends gets through), or their bodies ignored."""
    r = http.get(f"{V2}/filesystem/ls/{HOME}", params={"path": "/home/superfed"})
    assert r.status_code == 405 and r.json()["status"] == 405  # a problem, as every error
    for name, data in (("a.bin", b"\x00\xffbytes"), (".hidden", b"h")):
        up = http.post(f"{V2}/filesystem/upload/{HOME}", params={"path": f"/home/superfed/{name}"},
                       files={"file": (name, data, "application/octet-stream")})
        run_task(http, up)
    ls = http.post(f"{V2}/filesystem/ls/{HOME}", json={"path": "/home/superfed", "showHidden": True})
    listing = run_task(http, ls)
    names = {e["name"] for e in listing["output"]}
    assert {"a.bin", ".hidden"} <= names  # showHidden came from the body
    hidden = run_task(http, http.post(f"{V2}/filesystem/ls/{HOME}", json={"path": "/home/superfed"}))
    assert ".hidden" not in {e["name"] for e in hidden["output"]}
    st = run_task(http, http.post(f"{V2}/filesystem/stat/{HOME}", json={"path": "/home/superfed/a.bin"}))
    assert st["output"]["size"] == 7
    # the reference server's download: base64 in `output`, no `encoding` key
    dl = run_task(http, http.post(f"{V2}/filesystem/download/{HOME}", json={"path": "/home/superfed/a.bin"}))
    assert "encoding" not in dl and base64.b64decode(dl["output"]) == b"\x00\xffbytes"
    v1 = run_task(http, http.get(f"/api/v1/filesystem/download/{HOME}", params={"path": "/home/superfed/a.bin"}))
    assert v1["encoding"] == "base64"  # v1 (ALCF) says so
    head = run_task(http, http.post(f"{V2}/filesystem/head/{HOME}", json={"path": "/home/superfed/a.bin", "bytes": 2}))
    assert head["output"]["content_type"] == "bytes"
    chmod = http.post(f"{V2}/filesystem/chmod/{HOME}", json={"path": "/home/superfed/a.bin", "mode": "600"})
    assert run_task(http, chmod)["output"]["permissions"].startswith("rw-")
    put = http.put(f"{V2}/filesystem/chmod/{HOME}", json={"path": "/home/superfed/a.bin", "mode": "600"})
    assert put.status_code == 405  # v1's PUT
    missing = http.post(f"{V2}/filesystem/ls/{HOME}", json={"showHidden": True})
    assert missing.status_code == 422 and missing.json()["invalid_params"][0]["name"] == "path"
    rm = http.post(f"{V2}/filesystem/rm/{HOME}", json={"path": "/home/superfed/a.bin"})
    run_task(http, rm)
    assert http.post(f"{V2}/filesystem/resources").status_code == 200


def test_compression_is_a_urn(http: httpx.Client) -> None:
    """Catches: v2 taking v1's compression words, or refusing its own URNs."""
    run_task(http, http.post(f"{V2}/filesystem/mkdir/{HOME}", json={"path": "/home/superfed/d"}))
    body = {"path": "/home/superfed/d", "target_path": "/home/superfed/d.tar.xz",
            "compression": "urn:doe-iri:compression:xz"}
    run_task(http, http.post(f"{V2}/filesystem/compress/{HOME}", json=body))
    r = http.post(f"{V2}/filesystem/compress/{HOME}", json={**body, "compression": "xz"})
    assert r.status_code == 422 and r.json()["invalid_params"][0]["name"] == "compression"


def test_idempotency_key_replays_refuses_another_body_and_409s_in_flight(http: httpx.Client) -> None:
    """The reference server's semantics.  Catches: a replay that submits again (two jobs),
    a key reused with another body accepted, an in-flight duplicate let through."""
    key = {"Idempotency-Key": "0b9b8a52-2f3c-4f25-8a53-9d1e2a6f7c11"}
    first = http.post(f"{V2}/compute/job/{POLARIS}", json=spec_body(), headers=key)
    again = http.post(f"{V2}/compute/job/{POLARIS}", json=spec_body(), headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert (first.headers["idempotency-key-reply"], again.headers["idempotency-key-reply"]) == ("miss", "hit")
    assert len(jobs_named(http, "v2job")) == 1
    other = http.post(f"{V2}/compute/job/{POLARIS}", json=spec_body("sleep 2"), headers=key)
    assert other.status_code == 422 and "different request body" in other.json()["detail"]
    # without a key, or on v1 (no such header there), every POST is a new job
    assert http.post(f"{V2}/compute/job/{POLARIS}", json=spec_body()).json()["id"] != first.json()["id"]
    v1 = [http.post(f"/api/v1/compute/job/{POLARIS}", json=spec_body(), headers=key).json()["id"] for _ in range(2)]
    assert v1[0] != v1[1]
    # in flight: a held submission, then the same key again
    http.post("/_sim/iri", json={"hold_submissions": True}).raise_for_status()
    held = {"Idempotency-Key": "5f0e2a1c-8d7b-4c3e-9a2f-6b1d0c9e8f70"}
    answer: list[httpx.Response] = []
    t = threading.Thread(target=lambda: answer.append(
        http.post(f"{V2}/compute/job/{POLARIS}", json=spec_body("sleep 3"), headers=held)))
    t.start()
    deadline = time.monotonic() + 10
    while http.get("/_sim/iri").json()["in_flight"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    dup = http.post(f"{V2}/compute/job/{POLARIS}", json=spec_body("sleep 3"), headers=held)
    assert dup.status_code == 409 and dup.headers["retry-after"] == "2"
    http.post("/_sim/iri", json={"hold_submissions": False}).raise_for_status()
    t.join(10)
    assert answer[0].status_code == 200
    replay = http.post(f"{V2}/compute/job/{POLARIS}", json=spec_body("sleep 3"), headers=held)
    assert replay.json()["id"] == answer[0].json()["id"]


def test_a_failed_submission_releases_its_key(http: httpx.Client) -> None:
    """Catches: a refusal stored under the key (the fixed request could never be sent)."""
    key = {"Idempotency-Key": "a7c3e1f0-1b2d-4e5f-8a9b-0c1d2e3f4a5b"}
    bad = http.post(f"{V2}/compute/job/{POLARIS}", json=spec_body(queue_name="nope"), headers=key)
    assert bad.status_code == 422 and "Idempotency" not in bad.json()["detail"]
    good = http.post(f"{V2}/compute/job/{POLARIS}", json=spec_body(), headers=key)
    assert good.status_code == 200


def test_without_an_idempotency_store_a_key_is_501(http: httpx.Client) -> None:
    """The reference server run without IRI_IDEMPOTENCY_STORE: catches a quirk switch that
    does nothing (the adapter's fallback would go untested)."""
    http.post("/_sim/iri", json={"no_idempotency_store": True}).raise_for_status()
    r = http.post(f"{V2}/compute/job/{POLARIS}", json=spec_body(), headers={"Idempotency-Key": "k"})
    assert r.status_code == 501 and "idempotency store" in r.json()["detail"]
    assert http.post(f"{V2}/compute/job/{POLARIS}", json=spec_body()).status_code == 200
    http.post("/_sim/reset").raise_for_status()
    assert http.get("/_sim/iri").json()["no_idempotency_store"] is False  # a reset clears quirks


def test_a_v1_only_facility_has_no_v2(server: tuple[str, ValidatingASGI]) -> None:
    """ALCF today: /api/v2 is 404, which is how an adapter finds it speaks v1."""
    settings = SimSettings(systems=["polaris"], nodes=2, time_scale=0.01, static_tokens=[TOKEN])
    with ThreadedServer(create_app(settings, versions=("v1",))) as srv:
        assert httpx.get(f"{srv.url}{V2}/status/resources").status_code == 404
        assert httpx.get(f"{srv.url}/api/v1/status/resources").status_code == 200
