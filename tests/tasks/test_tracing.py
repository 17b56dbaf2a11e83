"""OpenTelemetry: one trace from the API request through the worker's run of the submission to
the facility's HTTP call, across processes joined only by Redis (the trace context rides in the
RQ job's meta). Real API (Litestar's test client), real private Redis, real worker (burst), real
IRI simulators; spans are caught by the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
import redis
from litestar.testing import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from broker import queues, tracing
from broker.app import create_app
from broker.config import Settings, TokenConfig, TracingConfig
from broker.worker import Worker
from tests.tasks.conftest import SPEC, Tasks

TOKEN = "tok-trace-submitter-0000"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # synchronous: every ended span is there
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


def broker_settings(tasks: Tasks, *, traced: bool) -> Settings:
    return msgspec.structs.replace(
        tasks.settings,
        tokens=[TokenConfig(name="s", role="submitter", token=TOKEN)],
        tracing=TracingConfig(enabled=traced),
    )


HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def submit_through_api(settings: Settings) -> str:
    with TestClient(create_app(settings)) as c:
        r = c.post("/api/v1/jobs", json={"project": "m0001", "spec": SPEC}, headers=HEADERS)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])


def cancel_through_api(settings: Settings, job_id: str) -> None:
    with TestClient(create_app(settings)) as c:
        r = c.delete(f"/api/v1/jobs/{job_id}", headers=HEADERS)
        assert r.status_code == 202, r.text


def run_worker(settings: Settings) -> None:
    """A real worker takes the queued submission and runs it, then stops (burst)."""
    assert asyncio.run(Worker(settings, "tracer").main(burst=True)) == 0


def url_of(span: ReadableSpan) -> str:
    attrs = span.attributes or {}
    return str(attrs.get("url.full") or attrs.get("http.url") or "")  # new or old HTTP conventions


def test_one_trace_from_the_request_through_the_worker_to_the_facility(
    make_tasks: Callable[..., Tasks], spans: InMemorySpanExporter
) -> None:
    tasks = make_tasks()
    for name in tasks.sim:
        assert tasks.check(name) == "up"
    settings = broker_settings(tasks, traced=True)
    job_id = submit_through_api(settings)
    run_worker(settings)
    job = tasks.job(job_id)
    assert job["state"] == "QUEUED", job
    facility = tasks.sim[job["site"]]
    assert len(facility.jobs_tagged(job_id)) == 1

    finished = spans.get_finished_spans()
    requests = [s for s in finished if s.kind == SpanKind.SERVER and s.name == "POST /api/v1/jobs"]
    assert len(requests) == 1, [s.name for s in finished]
    request = requests[0]
    assert request.context is not None
    trace_id = request.context.trace_id
    in_trace = [s for s in finished if s.context is not None and s.context.trace_id == trace_id]

    # the worker's run of the submission: a child of the request, though another process ran it
    runs = [s for s in in_trace if s.name == "superfed.submit"]
    assert len(runs) == 1, [s.name for s in in_trace]
    run = runs[0]
    assert run.kind == SpanKind.CONSUMER
    assert run.parent is not None and run.parent.span_id == request.context.span_id
    assert (run.attributes or {})["superfed.job_id"] == job_id
    assert run.context is not None

    # the facility calls it made, children of the run: the submission's POST among them
    calls = [s for s in in_trace if s.kind == SpanKind.CLIENT]
    assert calls, [s.name for s in in_trace]
    assert all(c.parent is not None and c.parent.span_id == run.context.span_id for c in calls)
    assert all(url_of(c).startswith(facility.url) for c in calls), [url_of(c) for c in calls]
    assert any(c.name == "POST" and "/compute/job/" in url_of(c) for c in calls), [(c.name, url_of(c)) for c in calls]

    # a cancel is traced the same way: its request, the worker's run, the facility's DELETE
    spans.clear()
    cancel_through_api(settings, job_id)
    run_worker(settings)
    finished = spans.get_finished_spans()
    (request,) = [s for s in finished if s.kind == SpanKind.SERVER and s.name.startswith("DELETE ")]
    (run,) = [s for s in finished if s.name == "superfed.cancel"]
    assert request.context is not None and run.context is not None and run.parent is not None
    assert run.parent.span_id == request.context.span_id
    assert any(s.kind == SpanKind.CLIENT and s.name == "DELETE" and s.parent is not None
               and s.parent.span_id == run.context.span_id for s in finished), [s.name for s in finished]


def test_off_by_default_no_context_is_written_and_runs_get_no_span(make_tasks: Callable[..., Tasks]) -> None:
    tasks = make_tasks()
    settings = broker_settings(tasks, traced=False)
    assert not tracing.wanted(settings) and not tracing.ON
    job_id = submit_through_api(settings)
    rq = redis.Redis.from_url(settings.redis_url)
    try:
        saved: dict[Any, Any] = rq.hgetall(f"rq:job:{queues.submit_rq_id(job_id)}")
    finally:
        rq.close()
    assert saved and b"meta" not in saved  # nothing added to the RQ job
    assert tracing.carrier() is None
    assert tracing.job_span(queues.SUBMIT_FN, {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}, job_id) \
        is tracing.job_span(queues.CANCEL_FN, None, job_id)  # one shared no-op, nothing made per job
