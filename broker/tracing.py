"""OpenTelemetry traces of a job: the API request (Litestar's OpenTelemetry plugin), the
worker's run of its submission, and the facility HTTP calls that run makes (httpx's
instrumentation), all in one trace.

The API and the worker are different processes joined only by Redis, so the request's trace
context rides in the submission's RQ job ``meta`` as a W3C ``traceparent`` (written in the same
MULTI/EXEC as the job; retries and takeovers keep it, since they keep the RQ job).

Optional (``pip install 'superfed[otel]'``) and off by default. Off, nothing here imports
OpenTelemetry and the hot paths pay one test of ``ON``: ``carrier()`` returns None (no meta
written) and ``job_span()`` a shared ``nullcontext``."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from litestar.plugins import InitPlugin
    from opentelemetry.trace import Tracer, TracerProvider

    from broker.config import Settings

log = logging.getLogger("superfed.tracing")

ON = False  # read on every job and request: a plain module global, no call
TRACEPARENT = "traceparent"
_NULL: AbstractContextManager[None] = nullcontext()
_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def wanted(settings: Settings) -> bool:
    """``[tracing] enabled``, or the SDK's own OTEL_TRACES_EXPORTER naming an exporter
    (OTEL_SDK_DISABLED=true wins over both, as it does in the SDK)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    env = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return settings.tracing.enabled or env in ("otlp", "console")


def setup(settings: Settings, component: str) -> bool:
    """Turn tracing on for this process if the config or environment asks for it, exporting
    with a batch processor; a process already set up (``enable``) keeps its provider.
    Returns whether tracing is on."""
    if ON or not wanted(settings):
        return ON
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        raise SystemExit(
            "tracing is enabled but OpenTelemetry is not installed: pip install 'superfed[otel]'"
        ) from None
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or settings.tracing.exporter
    exporter: SpanExporter
    if kind == "console":
        exporter = ConsoleSpanExporter()
    else:
        # reads OTEL_EXPORTER_OTLP_ENDPOINT / _HEADERS itself
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    # OTEL_SERVICE_NAME, when set, overrides the config's name (Resource.create reads it)
    name = os.environ.get("OTEL_SERVICE_NAME") or settings.tracing.service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name, "superfed.component": component}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # for any other instrumented library in the process
    enable(provider)
    log.info("tracing on: %s exporter, service %s", kind, name)
    return True


def enable(provider: TracerProvider) -> None:
    """Trace with ``provider`` from now on (``setup`` calls it; tests pass one holding an
    in-memory exporter). Instruments httpx, which every adapter's client is built on."""
    global ON, _tracer, _provider
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    _provider, _tracer = provider, provider.get_tracer("superfed")
    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
    ON = True


def disable() -> None:
    """Back to no tracing (tests): httpx is no longer instrumented."""
    global ON, _tracer, _provider
    if ON:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor().uninstrument()
    ON, _tracer, _provider = False, None, None


def litestar_plugin() -> InitPlugin:
    """Litestar's own OpenTelemetry plugin (a server span per request) on our provider."""
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    # the request's own receive/send spans add nothing a reader of a job's trace wants
    return OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=_provider, exclude_spans=["receive", "send"]))


def carrier() -> dict[str, str] | None:
    """The current trace context as RQ job meta (``{"traceparent": ...}``), or None when
    tracing is off or no span is current."""
    if not ON:
        return None
    from opentelemetry.propagate import inject

    out: dict[str, str] = {}
    inject(out)
    return out if TRACEPARENT in out else None


def job_span(func_name: str, meta: Mapping[str, Any] | None, job_id: str) -> AbstractContextManager[Any]:
    """A span for one run of an RQ job (``superfed.submit``, ``superfed.cancel``), child of the
    request whose context ``meta`` carries (a trace of its own when it carries none). A shared
    no-op when tracing is off."""
    if not ON:
        return _NULL
    return _job_span(func_name, meta, job_id)


@contextlib.contextmanager
def _job_span(func_name: str, meta: Mapping[str, Any] | None, job_id: str) -> Iterator[Any]:
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    assert _tracer is not None
    # the meta holds what ``carrier`` wrote (traceparent, maybe tracestate); other keys are ignored
    parent = extract(meta) if meta and TRACEPARENT in meta else None
    name = "superfed." + func_name.rsplit(".", 2)[-2]  # "broker.tasks.submit.run" -> "superfed.submit"
    attributes = {"superfed.job_id": job_id, "messaging.system": "rq"}
    with _tracer.start_as_current_span(name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes) as span:
        yield span
