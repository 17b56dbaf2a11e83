"""Issue 13: /metrics shows the whole broker (jobs by state and site, placement decisions,
submission attempts and failures, health, queue depths, adapter and request latency), read
from Redis by the API while the workers' tasks write it; and the Grafana dashboard asks only
for what a real scrape has."""

from __future__ import annotations

import json
import re
from pathlib import Path

from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from broker.app import create_app
from tests.tasks.conftest import SPEC, Tasks

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "superfed.json"
REFUSED = {**SPEC, "attributes": {"duration": 600, "custom_attributes": {}}}  # no filesystems: refused


def _scrape(t: Tasks) -> tuple[str, str]:
    """Jobs through the worker's tasks, requests through the API; then the API's /metrics.
    Returns (the exposition text, the id of the job that completed)."""
    done = t.create()
    assert "submitted to alpha" in t.submit(done)
    t.poll_until(done, {"COMPLETED"}, "alpha")
    assert t.submit(t.create(REFUSED)) == "failed: every eligible site refused the job"
    t.call(t.rt.metrics.flush)  # the worker's buffered adapter latencies (it flushes every second)
    with TestClient(create_app(t.settings)) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get(f"/api/v1/jobs/{done}").status_code == 401  # no token: counted under its route
        assert c.get("/no/such/path").status_code in (401, 404)
        text = c.get("/metrics").text
    return text, done


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    found = [v for lab, v in samples.get(name, []) if all(lab.get(k) == want for k, want in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {found} in {samples.get(name)}"
    return found[0]


def _at_most_one(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    found = [v for lab, v in samples.get(name, []) if all(lab.get(k) == want for k, want in labels.items())]
    assert len(found) <= 1, f"{name}{labels}: {found}"
    return found[0] if found else 0.0


def test_metrics_show_jobs_placements_attempts_health_queues_and_latency(healthy: Tasks) -> None:
    text, done = _scrape(healthy)
    s = _samples(text)
    # jobs by state, and by state and site: the completed job moved QUEUED -> ACTIVE -> COMPLETED at alpha
    assert _value(s, "superfed_jobs", state="COMPLETED") == 1 and _value(s, "superfed_jobs", state="FAILED") == 1
    assert _value(s, "superfed_site_jobs", state="COMPLETED", site="alpha") == 1
    # none left QUEUED or ACTIVE there (a poll may have seen it COMPLETED straight from QUEUED,
    # and a state a job never reached at a site has no sample at all)
    assert _at_most_one(s, "superfed_site_jobs", state="QUEUED", site="alpha") == 0
    assert _at_most_one(s, "superfed_site_jobs", state="ACTIVE", site="alpha") == 0
    assert _value(s, "superfed_site_jobs", state="FAILED", site="none") == 1  # refused everywhere: never placed
    # placement: alpha (best) twice, beta once (after alpha refused), then nowhere
    assert _value(s, "superfed_placement_decisions_total", site="alpha", reason="best") == 2
    assert _value(s, "superfed_placement_decisions_total", site="beta", reason="best") == 1
    assert _value(s, "superfed_placement_decisions_total", site="none", reason="no eligible site") == 1
    # submission attempts by outcome; failures by category
    assert _value(s, "superfed_submission_attempts_total", site="alpha", outcome="submitted") == 1
    assert _value(s, "superfed_submission_attempts_total", site="alpha", outcome="rejected") == 1
    assert _value(s, "superfed_submission_failures_total", site="beta", category="rejected") == 1
    assert not [lab for lab, _ in s["superfed_submission_failures_total"] if lab["category"] == "submitted"]
    # health per site and component
    assert _value(s, "superfed_site_health", site="alpha") == 1 and _value(s, "superfed_site_health", site="beta") == 1
    components = {(lab["site"], lab["component"]) for lab, _ in s["superfed_site_component_health"]}
    assert {"alpha", "beta"} <= {site for site, _ in components} and len(components) >= 2
    # queue depths (every submission ran here, not through RQ: nothing waits)
    assert {lab["queue"] for lab, _ in s["superfed_queue_depth"]} == {"superfed-submit", "superfed-cancel"}
    # adapter latency by site and operation (the worker's, flushed to Redis, read by the API)
    assert _value(s, "superfed_adapter_call_duration_seconds_count", site="alpha", operation="submit") == 2
    assert _value(s, "superfed_adapter_call_duration_seconds_count", site="alpha", operation="health") == 1
    assert _value(s, "superfed_adapter_call_duration_seconds_bucket", site="alpha", operation="submit", le="+Inf") == 2
    assert _value(s, "superfed_adapter_call_duration_seconds_count", site="alpha", operation="statuses") >= 1
    # requests by route template (never the raw path: no job id in any label)
    assert _value(s, "superfed_http_requests_total", method="GET", route="/healthz", status="200") == 1
    assert _value(s, "superfed_http_requests_total", method="GET", route="/api/v1/jobs/{job_id}",
                  status="401") == 1
    assert done not in text
    assert _value(s, "superfed_http_request_duration_seconds_count", method="GET", route="/healthz") == 1
    assert _value(s, "superfed_auth_failures_total") >= 1


def test_the_grafana_dashboard_asks_only_for_metrics_a_scrape_has(healthy: Tasks) -> None:
    text, _ = _scrape(healthy)
    names = {sample for sample in _samples(text)}
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    asked = {m for e in exprs for m in re.findall(r"\bsuperfed_[a-z_]+\b", e)}
    assert asked, exprs
    assert asked <= names, f"not in a scrape: {sorted(asked - names)}"
    # every family the broker exports has a panel
    families = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in names}
    shown = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in asked}
    assert families <= shown, f"no panel for: {sorted(families - shown)}"
