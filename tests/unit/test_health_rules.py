"""The health rules (broker/health.py): staleness, the circuit, what one check makes of the
previous record, and the change events. Pure: no Redis, no facility."""

from __future__ import annotations

import math

import pytest

from adapters.types import ComponentHealth, SiteHealth
from broker import metrics
from broker.config import validate_site
from broker.health import (
    STATES,
    HealthRecord,
    changes,
    circuit_open,
    effective,
    is_stale,
    next_record,
    visible_components,
)

SITE = validate_site(
    {"name": "alpha", "kind": "iri", "url": "http://127.0.0.1:1", "systems": ["s"], "health_interval": 2,
     "circuit_threshold": 3, "auth": {"token_env": "T"}}
)  # fmt: skip
T = 1_000.0
UP = SiteHealth(state="up", components=[ComponentHealth("compute", "up"), ComponentHealth("filesystem", "up")])


def rec(state: str = "up", *, ok_at: float | None = T, failures: int = 0) -> HealthRecord:
    return HealthRecord(
        site="alpha", state=state, components=[ComponentHealth("compute", state)], ok_at=ok_at, failures=failures
    )


def test_states_are_the_adapters_vocabulary() -> None:
    assert STATES == ("up", "degraded", "down", "unknown")
    assert set(metrics._HEALTH) == set(STATES)  # every state has a value on the metrics gauge


@pytest.mark.parametrize(
    ("ok_at", "now", "stale"),
    [(None, T, True), (T, T, False), (T, T + 6, False), (T, T + 6.001, True), (math.nan, T, True), (T, math.nan, True)],
)
def test_a_reading_goes_stale_after_stale_after(ok_at: float | None, now: float, stale: bool) -> None:
    assert SITE.staleness == 6  # default: three health intervals
    assert is_stale(ok_at, SITE.staleness, now) is stale


@pytest.mark.parametrize(("failures", "open_"), [(0, False), (2, False), (3, True), (7, True)])
def test_the_circuit_opens_at_the_threshold(failures: int, open_: bool) -> None:
    assert circuit_open(rec(failures=failures), SITE) is open_
    assert circuit_open(None, SITE) is False


@pytest.mark.parametrize(
    ("record", "now", "expected"),
    [
        (None, T, "unknown"),  # never checked
        (rec("degraded"), T + 1, "degraded"),  # fresh: as checked
        (rec("up"), T + 7, "unknown"),  # stale
        (rec("up", failures=2), T + 1, "up"),  # failures below the threshold: still the reading
        (rec("up", failures=3), T + 1, "unknown"),  # circuit open, the facility did not say down
        (rec("down", failures=3), T + 1, "down"),  # circuit open after refusals: down, with reason
    ],
)
def test_effective_state(record: HealthRecord | None, now: float, expected: str) -> None:
    assert effective(record, SITE, now) == expected


def test_stale_components_read_unknown_with_their_detail() -> None:
    r = HealthRecord(site="alpha", state="up", components=[ComponentHealth("compute", "up", "fine")], ok_at=T)
    assert visible_components(r, SITE, T + 1) == [ComponentHealth("compute", "up", "fine")]
    assert visible_components(r, SITE, T + 7) == [ComponentHealth("compute", "unknown", "fine")]


def test_a_successful_check_resets_the_failures() -> None:
    new = next_record(SITE, rec(failures=5), UP, now=T + 3, latency_ms=12.3456, allocations={"m1": 4.0})
    assert (new.state, new.ok_at, new.checked_at, new.failures, new.error) == ("up", T + 3, T + 3, 0, None)
    assert new.latency_ms == 12.35 and new.allocations == {"m1": 4.0}
    assert [c.name for c in new.components] == ["compute", "filesystem"]


def test_a_failed_check_keeps_the_reading_and_counts() -> None:
    prev = HealthRecord(site="alpha", state="up", ok_at=T, failures=1, allocations={"m1": 2.0})
    new = next_record(SITE, prev, None, now=T + 3, error="timed out")
    # ok_at stays: the reading goes stale by itself; failures count towards the circuit
    assert (new.state, new.ok_at, new.checked_at, new.failures, new.error) == ("up", T, T + 3, 2, "timed out")
    assert new.allocations == {"m1": 2.0}
    first = next_record(SITE, None, None, now=T, error="refused")
    assert (first.state, first.ok_at, first.failures) == ("unknown", None, 1)


def test_refused_credentials_read_down_with_the_reason() -> None:
    new = next_record(SITE, rec(), None, now=T + 3, error="credentials refused: 401", down=True)
    assert (new.state, new.ok_at, new.failures, new.error) == ("down", T + 3, 1, "credentials refused: 401")


def test_changes_name_the_site_and_each_component_that_moved() -> None:
    prev = next_record(SITE, None, UP, now=T)
    same = next_record(SITE, prev, UP, now=T + 1)
    assert changes(SITE, prev, same, T + 1) == []
    worse = next_record(
        SITE, prev, SiteHealth("degraded", [ComponentHealth("compute", "degraded", "slow"),
                                            ComponentHealth("filesystem", "up")]), now=T + 2
    )  # fmt: skip
    evs = changes(SITE, prev, worse, T + 2)
    moved = [(None, "up", "degraded"), ("compute", "up", "degraded")]
    assert [(e.component, e.previous, e.state) for e in evs] == moved
    assert evs[1].detail == "slow"
    first = changes(SITE, None, prev, T)
    assert [(e.component, e.previous, e.state) for e in first] == [
        (None, None, "up"), ("compute", None, "up"), ("filesystem", None, "up")
    ]  # fmt: skip


def test_the_circuit_opening_is_an_event_with_the_error() -> None:
    r = rec(failures=2)
    failed = next_record(SITE, r, None, now=T + 1, error="no answer in time")
    evs = changes(SITE, r, failed, T + 1)
    assert [(e.component, e.previous, e.state, e.detail) for e in evs] == [
        (None, "up", "unknown", "no answer in time")
    ]
