"""Schemathesis against the saved FirecREST v2 and IRI v1 and v2 specs, one test per spec; and,
as the SF API has no spec, a table of bad requests to its simulator over raw HTTP.

Every operation of each spec gets a few generated requests, positive (what the spec allows)
and negative (what it forbids), with a valid bearer token so the authenticated code is
reached. Most are "grounded": path parameters and file paths replaced by names the
simulator knows (a real system, job, task, project; an existing file or directory, or a new
name), so the fuzzing gets past "system not found" into the handlers.

Checks: never a 5xx; status code, content type and body as the spec declares; and data the
spec forbids is refused (a FastAPI server refuses it: FirecREST with 400, IRI with 4xx), in the
facility's own error shape. Every answer is also validated by openapi-core (``ValidatingASGI``).
Known spec defects are ``SPEC_EXCEPTIONS`` in tests/support/openapi.py, honoured by both.

Bounded and reproducible: derandomized Hypothesis, no example database, no shrinking (a
failure prints its curl command), a fixed number of examples per operation and mode.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from simulators.common.facility import SimSettings
from simulators.firecrest import create_app as firecrest_app
from simulators.iri import catalog
from simulators.iri import create_app as iri_app
from tests.support.openapi import ValidatingASGI, excepted, load_spec
from tests.support.servers import ThreadedServer
from tests.support.sfapi import HOME as SF_HOME
from tests.support.sfapi import SfapiSim, running_sim
from tests.support.specs import spec_path

EXAMPLES = 10  # per operation and generation mode
# the file path a case gets: as generated (""), or an existing file or directory, or a new name
WHERE = ("", "file", "dir", "new", "file", "dir")
USER = "fuzz"
FC_SPEC, IRI_SPEC, IRI_V2_SPEC = "firecrest-v2/openapi-latest.yaml", "iri/all_spec_v1.yaml", "iri/all_spec_v2.yaml"
CLIENT_ID, SECRET, IRI_TOKEN = "fuzz-client", "fuzz-secret", "fuzz-static-token"
POLARIS, HOME = catalog.resource_id("polaris"), catalog.resource_id("home")
PATH_KEYS = ("path", "sourcePath", "source_path")
TARGET_KEYS = ("targetPath", "target_path", "linkPath", "link_path")
WORKDIR_KEYS = ("workingDirectory", "working_directory")

Known = dict[str, str]  # parameter name (or "name:operation path") -> a value the simulator knows


@functools.cache
def _schema(relpath: str) -> Any:
    raw = yaml.safe_load(spec_path(relpath).read_text())
    raw["servers"] = [{"url": "/"}]  # the base URL is the simulator's, given at call time
    return schemathesis.openapi.from_dict(raw)


def _unless_excepted(relpath: str, check: Callable[..., Any]) -> Callable[..., Any]:
    """A conformance check that yields to a recorded spec defect (SPEC_EXCEPTIONS)."""
    spec = load_spec(relpath)

    def wrapped(ctx: Any, response: Any, case: Any) -> Any:
        if excepted(spec, case.method, urlsplit(response.request.url).path, response.status_code):
            return None
        return check(ctx, response, case)

    wrapped.__name__ = check.__name__
    return wrapped


def _checks(relpath: str) -> list[Callable[..., Any]]:
    conformance = (status_code_conformance, content_type_conformance, response_schema_conformance)
    return [not_a_server_error, negative_data_rejection, *(_unless_excepted(relpath, c) for c in conformance)]


def _ground(case: Any, known: Known, where: str) -> None:
    """Known ids in the path, and the ``where`` file path ("file", "dir" or "new"), in the
    components Schemathesis generated valid: what it broke on purpose stays broken."""
    meta = case.meta

    def put(location: ParameterLocation, container: Any, key: str, value: str | None) -> None:
        if meta is not None and meta.is_negative_at(location):
            return
        if value is not None and isinstance(container, dict) and key in container:
            container[key] = value

    path, query, body = ParameterLocation.PATH, ParameterLocation.QUERY, ParameterLocation.BODY
    for name in list(case.path_parameters or {}):
        put(path, case.path_parameters, name, known.get(f"{name}:{case.operation.path}", known.get(name)))
    for key in PATH_KEYS:
        put(query, case.query, key, known[where])
        put(body, case.body, key, known[where])
    for key in TARGET_KEYS:
        put(body, case.body, key, known["new"])
    job = case.body.get("job") if isinstance(case.body, dict) else None
    for key in WORKDIR_KEYS:
        put(body, job, key, known["dir"])


# -- the simulators, and what each knows after a reset -------------------------------------------
def _firecrest_known(session: requests.Session, url: str) -> Known:
    session.post(f"{url}/_sim/reset").raise_for_status()
    home = f"/home/{USER}"
    session.post(f"{url}/filesystem/daint/ops/mkdir", json={"path": f"{home}/dir"}).raise_for_status()
    job = session.post(f"{url}/compute/daint/jobs", json={"job": {
        "script": "#!/bin/bash\n#SBATCH --time=00:01:00\nsleep 1\n", "workingDirectory": home}})
    job.raise_for_status()
    return {"system_name": "daint", "job_id": job.json()["jobId"],
            "file": f"{home}/.bashrc", "dir": f"{home}/dir", "new": f"{home}/dir/new"}


def _iri_known(session: requests.Session, url: str, version: str = "v1") -> Known:
    session.post(f"{url}/_sim/reset").raise_for_status()
    api, home = f"{url}/api/{version}", f"/home/{USER}"
    job = session.post(f"{api}/compute/job/{POLARIS}", json={
        "executable": "/bin/true", "name": "fuzz", "resources": {"node_count": 1},
        "attributes": {"duration": 600, "account": "m0001", "queue_name": "debug",
                       "custom_attributes": {"filesystems": "home"}}})
    job.raise_for_status()
    session.post(f"{api}/filesystem/mkdir/{HOME}", json={"path": f"{home}/dir"}).raise_for_status()
    if version == "v1":
        task = session.get(f"{api}/filesystem/ls/{HOME}", params={"path": home})
    else:  # v2: filesystem reads are POST with a JSON body
        task = session.post(f"{api}/filesystem/ls/{HOME}", json={"path": home})
    task.raise_for_status()
    known = {"resource_id": POLARIS, "job_id": job.json()["id"], "task_id": task.json()["task_id"],
             "project_id": "m0001", "project_allocation_id": "m0001.polaris",
             "user_allocation_id": f"m0001.polaris.{USER}", "site_id": catalog.SITE_ID,
             "capability_id": catalog.capability_id("polaris"),
             "file": f"{home}/.profile", "dir": f"{home}/dir", "new": f"{home}/dir/new"}
    spec = IRI_SPEC if version == "v1" else IRI_V2_SPEC
    for path in _schema(spec).raw_schema["paths"]:  # filesystem operations take the home resource
        if path.startswith(f"/api/{version}/filesystem/"):
            known[f"resource_id:{path}"] = HOME
    return known


def _iri_v2_known(session: requests.Session, url: str) -> Known:
    return _iri_known(session, url, "v2")


@pytest.fixture(scope="module")
def firecrest() -> Iterator[tuple[str, ValidatingASGI, dict[str, str]]]:
    settings_ = SimSettings(enforce_policy=False, systems=["daint"], nodes=4, time_scale=0.01, user=USER,
                            client_id=CLIENT_ID, client_secret=SECRET)
    wrapper = ValidatingASGI(firecrest_app(settings_), load_spec(FC_SPEC), skip_prefixes=("/_sim", "/auth/token"))
    with ThreadedServer(wrapper) as srv:
        token = requests.post(f"{srv.url}/auth/token", timeout=10, data={
            "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET})
        token.raise_for_status()
        yield srv.url, wrapper, {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture(scope="module")
def iri() -> Iterator[tuple[str, ValidatingASGI, dict[str, str]]]:
    settings_ = SimSettings(
        enforce_policy=False, systems=["polaris"], nodes=4, time_scale=0.01, user=USER, static_tokens=[IRI_TOKEN]
    )
    wrapper = ValidatingASGI(iri_app(settings_), load_spec(IRI_SPEC))
    with ThreadedServer(wrapper) as srv:
        yield srv.url, wrapper, {"Authorization": f"Bearer {IRI_TOKEN}"}


@pytest.fixture(scope="module")
def iri_v2() -> Iterator[tuple[str, ValidatingASGI, dict[str, str]]]:
    settings_ = SimSettings(systems=["polaris"], nodes=4, time_scale=0.01, user=USER, static_tokens=[IRI_TOKEN])
    wrapper = ValidatingASGI(iri_app(settings_), load_spec(IRI_V2_SPEC))
    with ThreadedServer(wrapper) as srv:
        yield srv.url, wrapper, {"Authorization": f"Bearer {IRI_TOKEN}"}


def _negatable(op: Any) -> bool:
    """Negative data needs something to break: a parameter or a body (the token is fixed)."""
    raw = op.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody"))


def _examples(op: Any, mode: GenerationMode, headers: dict[str, str], known: Known,
              call: Callable[[Any], None]) -> None:
    """EXAMPLES generated cases of one operation, grounded or not, each sent by ``call``."""

    # the token is fixed: negative data never drops it (a 401 would say nothing about the data)
    @given(case=op.as_strategy(generation_mode=mode, headers=headers), where=st.sampled_from(WHERE))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: Any, where: str) -> None:
        if where:  # each drawn case is fresh: edit it in place
            _ground(case, known, where)
        call(case)

    run()


def _fuzz(relpath: str, url: str, wrapper: ValidatingASGI, headers: dict[str, str],
          known_of: Callable[[requests.Session, str], Known]) -> int:
    checks = _checks(relpath)
    failures: list[str] = []
    calls = 0
    with requests.Session() as session:

        def call(case: Any) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(base_url=url, session=session, headers=dict(headers), checks=checks, timeout=10)

        for result in _schema(relpath).get_all_operations():
            op = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[: 2 if _negatable(op) else 1]:
                with requests.Session() as setup:  # a fresh facility for each operation and mode
                    setup.headers.update(headers)
                    known = known_of(setup, url)
                try:
                    _examples(op, mode, headers, known, call)
                except Unsatisfiable:  # only free-form path strings to break (every string is one): nothing to do
                    pass
                except (Exception, BaseExceptionGroup) as exc:  # every operation's failure, reported together
                    failures.append(f"{op.label} [{mode.value}]: {exc}")
    assert not failures, f"{len(failures)} failing operation(s):\n\n" + "\n\n".join(failures)
    assert wrapper.errors == [], "\n".join(wrapper.errors)
    assert wrapper.validated > 0
    return calls


def test_firecrest_conforms_to_its_spec(firecrest: tuple[str, ValidatingASGI, dict[str, str]]) -> None:
    assert _fuzz(FC_SPEC, *firecrest, known_of=_firecrest_known) > 300


def test_iri_conforms_to_its_spec(iri: tuple[str, ValidatingASGI, dict[str, str]]) -> None:
    assert _fuzz(IRI_SPEC, *iri, known_of=_iri_known) > 400


def test_iri_v2_conforms_to_its_spec(iri_v2: tuple[str, ValidatingASGI, dict[str, str]]) -> None:
    assert _fuzz(IRI_V2_SPEC, *iri_v2, known_of=_iri_v2_known) > 400


# -- what the fuzzing found, pinned -----------------------------------------------------------
def test_firecrest_refuses_what_fastapi_refuses(firecrest: tuple[str, ValidatingASGI, dict[str, str]]) -> None:
    url, _, headers = firecrest
    with requests.Session() as s:
        s.headers.update(headers)
        _firecrest_known(s, url)
        for path, params in [
            ("/compute/daint/jobs", {"allusers": "maybe"}),
            ("/filesystem/daint/ops/ls", {"path": f"/home/{USER}", "recursive": "2"}),
            ("/filesystem/daint/ops/stat", {"path": f"/home/{USER}", "dereference": "null"}),
            ("/status/daint/partitions", {"show_hidden": "-1"}),
            ("/filesystem/daint/ops/head", {"path": f"/home/{USER}/.bashrc", "bytes": "0", "lines": "1"}),
        ]:
            r = s.get(f"{url}{path}", params=params)
            assert r.status_code == 400, (path, r.text)
            body = r.json()
            assert set(body) == {"errorType", "message", "causedBy", "data", "user"}
        assert s.get(f"{url}/compute/daint/jobs", params={"allusers": "Yes"}).status_code == 200  # pydantic's lax bool
        r = s.get(f"{url}/filesystem/daint/ops/head", params={"path": f"/home/{USER}/.bashrc", "bytes": "0"})
        assert r.status_code == 200 and r.json()["output"]["contentType"] == "bytes"


def test_iri_refuses_what_the_spec_forbids(iri: tuple[str, ValidatingASGI, dict[str, str]]) -> None:
    url, _, headers = iri
    api = f"{url}/api/v1"
    with requests.Session() as s:
        s.headers.update(headers)
        _iri_known(s, url)
        r = s.put(f"{api}/filesystem/chmod/{HOME}", json={"path": f"/home/{USER}/.profile"})
        assert r.status_code == 422 and r.json()["invalid_params"] == [{"name": "mode", "reason": "Field required"}]
        r = s.post(f"{api}/filesystem/symlink/{HOME}", json={"path": f"/home/{USER}/.profile"})
        assert r.status_code == 422 and r.json()["invalid_params"][0]["name"] == "link_path"
        r = s.get(f"{api}/status/resources", params={"capability": ["node_hours", "parsecs"]})
        assert r.status_code == 400 and r.json()["invalid_params"][0]["name"] == "capability"
        assert s.get(f"{api}/status/resources", params={"capability": "node_hours"}).status_code == 200


# -- SF API: no spec to fuzz from, so bad requests by hand -----------------------------------
# (tests/simulators/test_sfapi_protocol.py covers missing form fields, a bad isPath, a bad limit,
# unknown routes and machines, 405; these are the rest.) Each: method, path under /api/v1.2,
# httpx arguments, the status, and for 200 the in-band error the body must carry.
SF_TOKEN = "sf-fuzz-token"
_URLENCODED = {"content-type": "application/x-www-form-urlencoded"}
SF_BAD: list[tuple[str, str, dict[str, Any], int]] = [
    # malformed forms
    ("POST", "/compute/jobs/perlmutter", {"content": b"\xff\xfe%%%&&==job", "headers": _URLENCODED}, 422),
    ("POST", "/compute/jobs/perlmutter", {"content": b"junk", "headers": {"content-type": "multipart/form-data"}}, 400),
    ("POST", "/compute/jobs/perlmutter",
     {"content": b"--x\r\njunk", "headers": {"content-type": "multipart/form-data; boundary=x"}}, 400),
    ("POST", "/compute/jobs/perlmutter", {"json": {"job": "#!/bin/bash\n", "isPath": False}}, 422),  # JSON: no form
    ("POST", "/storage/globus/transfer", {"content": b"\xff", "headers": _URLENCODED}, 422),
    ("PUT", f"/utilities/upload/perlmutter/{SF_HOME}/x",
     {"content": b"junk", "headers": {"content-type": "multipart/form-data"}}, 400),
    ("POST", "/account/groups", {"data": {"name": "g"}}, 422),
    # wrong types and values
    ("GET", "/compute/jobs/perlmutter", {"params": {"sacct": "2"}}, 422),
    ("GET", "/compute/jobs/perlmutter", {"params": {"cached": ""}}, 422),
    ("GET", "/compute/jobs/perlmutter", {"params": {"index": "first"}}, 422),
    ("GET", f"/utilities/download/perlmutter/{SF_HOME}/x", {"params": {"binary": "maybe"}}, 422),
    ("PUT", "/account/groups/m0001", {"data": {"usernames": "a", "action": "explode"}}, 422),
    # unknown machine, job, task, transfer, group, status resource
    ("GET", "/compute/jobs/cori/1", {}, 404),
    ("POST", "/utilities/command/cori", {"data": {"executable": "ls"}}, 404),
    ("GET", "/utilities/ls/cori//x", {}, 404),
    ("GET", "/tasks/nope", {}, 404),
    ("DELETE", "/tasks/nope", {}, 404),
    ("GET", "/account/groups/nope", {}, 404),
    ("PUT", "/account/groups/nope", {"data": {"usernames": "a", "action": "batch_add"}}, 404),
    ("GET", "/status/nope", {}, 404),
    ("GET", "/status/outages/planned/nope", {}, 404),
    ("GET", "/storage/globus/transfer/nope", {}, 200),  # {"status": "ERROR", "reason": ...}
    ("GET", "/compute/jobs/perlmutter/99999999", {}, 200),  # no such job: no rows
    ("GET", "/compute/jobs/perlmutter/abc", {}, 200),
    # huge and negative numbers
    ("GET", "/compute/jobs/perlmutter", {"params": {"limit": "9" * 40, "index": "-1"}}, 200),
    ("GET", "/compute/jobs/perlmutter/" + "9" * 40, {}, 200),
    ("GET", "/tasks/" + "9" * 40, {}, 404),
    ("DELETE", "/compute/jobs/perlmutter/-1", {}, 200),  # a task: scancel's error is its result
    ("POST", "/compute/jobs/perlmutter",
     {"data": {"job": "#!/bin/bash\n#SBATCH -N 99999999999999999999\n#SBATCH -t -5\n", "isPath": "false"}}, 200),
    # path traversal and odd paths: the answer is an in-band error, never a file outside the tree
    ("GET", f"/utilities/ls/perlmutter/{SF_HOME}/../../../../etc", {}, 200),
    ("GET", "/utilities/ls/perlmutter/..%2F..%2Fetc", {}, 200),
    ("GET", "/utilities/ls/perlmutter/%00", {}, 200),
    ("GET", f"/utilities/download/perlmutter/{SF_HOME}/../../../../etc/passwd", {}, 200),
    ("PUT", f"/utilities/upload/perlmutter/{SF_HOME}/../../../../etc/x", {"files": {"file": ("x", b"abc")}}, 200),
    ("POST", "/compute/jobs/perlmutter", {"data": {"job": "../../../../etc/passwd", "isPath": "true"}}, 200),
    ("GET", "/compute/jobs/perlmutter/..%2F..%2Fetc", {}, 404),
]


@pytest.fixture(scope="module")
def sfapi() -> Iterator[SfapiSim]:
    yield from running_sim(static_tokens=[SF_TOKEN])


def test_sfapi_bad_requests_get_fastapi_errors(sfapi: SfapiSim) -> None:
    failures = []
    with httpx.Client(base_url=sfapi.api, headers={"Authorization": f"Bearer {SF_TOKEN}"}, timeout=10) as s:
        for method, path, kwargs, status in SF_BAD:
            r = s.request(method, path, **kwargs)
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
            if status >= 400:  # FastAPI: {"detail": "..."}, or 422's {"detail": [{"type", "loc", "msg"}...]}
                detail = body.get("detail") if isinstance(body, dict) else None
                shaped = isinstance(detail, str) or (
                    isinstance(detail, list) and detail and all({"type", "loc", "msg"} <= set(d) for d in detail))
            else:  # in-band: a task, rows, or an ERROR status naming why
                shaped = isinstance(body, dict) and (
                    "task_id" in body or body.get("output") == [] or body.get("status") == "ERROR")
            if r.status_code != status or not shaped:
                failures.append(f"{method} {path} -> {r.status_code} {r.text[:200]}")
        # what an in-band path error says: nothing outside the simulated tree is ever read
        r = s.get(f"/utilities/download/perlmutter/{SF_HOME}/../../../../etc/passwd")
        assert "No such file or directory" in r.json()["error"]
    assert not failures, "\n".join(failures)


def test_sfapi_huge_command_lines_are_refused_quickly(sfapi: SfapiSim) -> None:
    """A megabyte-long line once stalled the whole simulator for seconds (shlex is quadratic);
    like execve, the shell refuses a line over MAX_ARG_STRLEN."""
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {SF_TOKEN}"
        # refused by its length before any parsing (the stall was the parse); the timeout only
        # keeps a regression from hanging the suite
        r = s.post(f"{sfapi.api}/utilities/command/perlmutter", data={"executable": "echo " + "x" * 1_000_000},
                   timeout=60)
        assert r.status_code == 200
        result = s.get(f"{sfapi.api}/tasks/{r.json()['task_id']}").json()["result"]
        assert '"exit_code": 126' in result and "Argument list too long" in result
