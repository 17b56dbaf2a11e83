"""Placement: every filter with its reason, the score's ordering, the strategies, bursts."""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.placement import (
    STRATEGIES,
    Decision,
    PlacementRequest,
    Policy,
    SiteRanking,
    SiteView,
    format_duration,
    place,
)

NOW = 1_700_000_000.0
BEST = Policy()


def site(name: str = "alpha", **kw: object) -> SiteView:
    """A healthy, freshly checked site unless told otherwise."""
    fields: dict[str, object] = {"kind": "sfapi", "health": "up", "checked_at": NOW - 5} | kw
    return SiteView(name, **fields)  # type: ignore[arg-type]


def ask(**kw: object) -> PlacementRequest:
    fields: dict[str, object] = {"project": "m0001", "nodes": 2, "walltime": 3600} | kw
    return PlacementRequest(**fields)  # type: ignore[arg-type]


def ranking_of(d: Decision, name: str) -> SiteRanking:
    (r,) = [r for r in d.ranking if r.site == name]
    return r


def reasons(s: SiteView, req: PlacementRequest | None = None) -> list[str]:
    r = ranking_of(place(req or ask(), [s], BEST, now=NOW), s.name)
    assert r.eligible is (not r.reasons or r.score is not None)
    return r.reasons if not r.eligible else []


# --- filters ---------------------------------------------------------------------------------

FILTERS = [
    (site(enabled=False), ask(), "disabled by an admin"),
    (site(draining=True), ask(), "draining: no new jobs are placed here"),
    (site(checked_at=None), ask(), "health unknown: never checked"),
    (
        site(checked_at=NOW - 45),
        ask(),
        "health unknown: last successful check 45 s ago, stale after 30 s",
    ),
    (
        site(checked_at=NOW - 600, stale_after=60),
        ask(),
        "health unknown: last successful check 10 min ago, stale after 60 s",
    ),
    (
        site(checked_at=NOW - 3 * 3600),
        ask(),
        "health unknown: last successful check 3.0 h ago, stale after 30 s",
    ),
    (site(health="down"), ask(), "compute is down"),
    (site(health="unknown"), ask(), "compute state is unknown: the last check could not tell"),
    (site(health="sideways"), ask(), "compute state 'sideways' is not one placement knows"),
    (
        site(circuit_open=True, consecutive_failures=3),
        ask(),
        "circuit open after 3 consecutive failed checks",
    ),
    (
        site(circuit_open=True, consecutive_failures=1),
        ask(),
        "circuit open after 1 consecutive failed check",
    ),
    (site(circuit_open=True), ask(), "circuit open"),
    (
        site(remaining={"m0001": 0.0}),
        ask(),
        "project m0001 has no allocation left here (0.0 node-hours)",
    ),
    (
        site(remaining={"m0001": -12.5}),
        ask(),
        "project m0001 has no allocation left here (-12.5 node-hours)",
    ),
    (site(remaining={"other": 50.0}), ask(), "project m0001 has no allocation here"),
    (site(max_nodes=16), ask(nodes=20), "asks 20 nodes; this site allows at most 16"),
    (site(max_nodes=0), ask(nodes=1), "asks 1 node; this site allows at most 0"),
    (
        site(max_walltime=24 * 3600),
        ask(walltime=48 * 3600),
        "asks 48h00m walltime; this site allows at most 24h00m",
    ),
    (site("beta"), ask(site="alpha"), "excluded by the job's placement: it asks for site alpha"),
    (
        site("gamma"),
        ask(sites=["beta", "alpha"]),
        "excluded by the job's placement: not among its sites (alpha, beta)",
    ),
    (site(), ask(exclude=["alpha"]), "excluded by the job's placement: listed in exclude"),
]


@pytest.mark.parametrize(("s", "req", "reason"), FILTERS, ids=[f[2][:40] for f in FILTERS])
def test_each_filter_refuses_with_its_reason(
    s: SiteView, req: PlacementRequest, reason: str
) -> None:
    d = place(req, [s], BEST, now=NOW)
    assert d.chosen is None
    assert d.ranking == [SiteRanking(s.name, False, None, [reason])]


def test_every_reason_is_recorded_not_only_the_first() -> None:
    s = site(
        enabled=False,
        draining=True,
        checked_at=NOW - 45,
        circuit_open=True,
        consecutive_failures=3,
        remaining={"m0001": 0.0},
        max_nodes=16,
        max_walltime=24 * 3600,
    )
    got = reasons(s, ask(nodes=20, walltime=48 * 3600, exclude=["alpha"]))
    assert got == [
        "excluded by the job's placement: listed in exclude",
        "disabled by an admin",
        "draining: no new jobs are placed here",
        "health unknown: last successful check 45 s ago, stale after 30 s",
        "circuit open after 3 consecutive failed checks",
        "project m0001 has no allocation left here (0.0 node-hours)",
        "asks 20 nodes; this site allows at most 16",
        "asks 48h00m walltime; this site allows at most 24h00m",
    ]


@pytest.mark.parametrize(
    "s",
    [
        site(),
        site(health="degraded"),
        site(checked_at=NOW - 30),  # exactly at the staleness limit is still fresh
        site(checked_at=NOW + 10),  # a clock a little ahead is not stale
        site(consecutive_failures=2),  # failures below the circuit's threshold only cost score
        site(remaining={"m0001": 0.5, "other": 0.0}),
        site(remaining=None),
        site(max_nodes=2, max_walltime=3600),  # limits are inclusive
        site(weight=0.0),
    ],
)
def test_sites_that_pass_every_filter(s: SiteView) -> None:
    d = place(ask(), [s], BEST, now=NOW)
    assert d.chosen == s.name
    assert d.eligible == [s.name]


def test_no_walltime_passes_the_walltime_limit() -> None:
    assert reasons(site(max_walltime=60), ask(walltime=None)) == []


def test_allowed_and_pinned_sites_pass() -> None:
    sites = [site("alpha"), site("beta"), site("gamma")]
    assert place(ask(site="beta"), sites, BEST, now=NOW).eligible == ["beta"]
    assert place(ask(sites=["gamma", "beta"]), sites, BEST, now=NOW).eligible == ["beta", "gamma"]
    assert place(ask(exclude=["alpha"]), sites, BEST, now=NOW).eligible == ["beta", "gamma"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0h00m"), (1800, "0h30m"), (3600, "1h00m"), (86400, "24h00m"), (3605, "1h00m05s")],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


# --- pinning and empty answers ---------------------------------------------------------------


def test_pinning_to_an_ineligible_site_chooses_nothing_and_says_why() -> None:
    sites = [site("alpha", health="down"), site("beta")]
    d = place(ask(site="alpha"), sites, BEST, now=NOW)
    assert d.chosen is None
    assert d.eligible == []
    assert ranking_of(d, "alpha").reasons == ["compute is down"]
    assert ranking_of(d, "beta").reasons == [
        "excluded by the job's placement: it asks for site alpha"
    ]
    assert d.summary() == (
        "no eligible site: alpha: compute is down;"
        " beta: excluded by the job's placement: it asks for site alpha"
    )


def test_the_summary_joins_every_reason_of_every_site() -> None:
    d = place(ask(nodes=64), [site("alpha", health="down", max_nodes=8)], BEST, now=NOW)
    assert d.summary() == "no eligible site: alpha: compute is down, asks 64 nodes; this site allows at most 8"


def test_pinning_to_an_unknown_site_chooses_nothing() -> None:
    d = place(ask(site="nowhere"), [site("alpha")], BEST, now=NOW)
    assert d.chosen is None
    assert ranking_of(d, "alpha").reasons == [
        "excluded by the job's placement: it asks for site nowhere"
    ]


def test_no_sites_at_all() -> None:
    d = place(ask(), [], BEST, now=NOW)
    assert (d.chosen, d.ranking, d.eligible) == (None, [], [])
    assert d.summary() == "no eligible site: no sites are configured"


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown placement strategy 'fastest'"):
        place(ask(strategy="fastest"), [site()], BEST, now=NOW)
    with pytest.raises(ValueError, match="expected one of best, priority, round-robin"):
        place(ask(), [site()], Policy(strategy="random"), now=NOW)


# --- scores ------------------------------------------------------------------------------------


def best_of(*sites: SiteView) -> str | None:
    return place(ask(), list(sites), BEST, now=NOW).chosen


def score(s: SiteView) -> float:
    r = place(ask(), [s], BEST, now=NOW).ranking[0]
    assert r.score is not None
    return r.score


def test_idle_site_beats_busy_one() -> None:
    assert best_of(site("alpha", backlog=40), site("beta", backlog=0)) == "beta"


def test_backlog_counts_relative_to_capacity() -> None:
    assert best_of(site("alpha", backlog=10, capacity=20), site("beta", backlog=30)) == "beta"


def test_degraded_loses_to_up_at_equal_backlog() -> None:
    assert best_of(site("alpha", health="degraded"), site("beta")) == "beta"
    assert score(site(health="degraded")) == pytest.approx(score(site()) / 2, abs=1e-4)


def test_weight_matters() -> None:
    assert best_of(site("alpha"), site("beta", weight=2.0)) == "beta"
    assert best_of(site("alpha", weight=0.5), site("beta")) == "beta"
    assert score(site(weight=3.0)) == pytest.approx(3 * score(site()), abs=1e-3)


def test_weight_zero_is_last_but_still_eligible() -> None:
    d = place(ask(), [site("alpha", weight=0.0), site("beta", backlog=500)], BEST, now=NOW)
    assert d.eligible == ["beta", "alpha"]
    assert ranking_of(d, "alpha").score == 0.0


def test_throughput_helps_but_backlog_dominates() -> None:
    assert best_of(site("alpha"), site("beta", throughput=30.0)) == "beta"
    # the fastest site with a full queue loses to a slow idle one
    assert best_of(site("alpha", throughput=1000.0, backlog=100), site("beta")) == "beta"


def test_recent_failed_checks_cost_score() -> None:
    assert best_of(site("alpha", consecutive_failures=1), site("beta")) == "beta"
    assert score(site(consecutive_failures=2)) < score(site(consecutive_failures=1))


def test_ties_break_by_name() -> None:
    sites = [site("gamma"), site("alpha"), site("beta")]
    assert place(ask(), sites, BEST, now=NOW).eligible == ["alpha", "beta", "gamma"]


def test_score_is_explained_with_its_numbers() -> None:
    r = place(ask(), [site(backlog=3, throughput=12.0)], BEST, now=NOW).ranking[0]
    assert r.score == 0.8826
    assert r.reasons == [
        "backlog 3 of 100, 12.0 jobs/min finished, compute up, weight 1.0 → score 0.88"
    ]
    r = place(ask(), [site(health="degraded", consecutive_failures=1)], BEST, now=NOW).ranking[0]
    assert r.reasons == [
        "backlog 0 of 100, 0.0 jobs/min finished, compute degraded, 1 failed check recently,"
        " weight 1.0 → score 0.27"
    ]


@pytest.mark.parametrize(
    ("capacities", "expected"),
    [((100, 100, 100), (34, 33, 33)), ((100, 50, 50), (50, 25, 25)), ((60, 30, 10), (60, 30, 10))],
)
def test_burst_spreads_by_capacity(
    capacities: tuple[int, int, int], expected: tuple[int, int, int]
) -> None:
    names = ("alpha", "beta", "gamma")
    backlog = dict.fromkeys(names, 0)
    for _ in range(100):
        sites = [
            site(n, capacity=c, backlog=backlog[n]) for n, c in zip(names, capacities, strict=True)
        ]
        chosen = place(ask(), sites, BEST, now=NOW).chosen
        assert chosen is not None
        backlog[chosen] += 1
    for n, want in zip(names, expected, strict=True):
        assert abs(backlog[n] - want) <= 1, backlog


def test_burst_follows_weight() -> None:
    backlog = {"alpha": 0, "beta": 0}
    for _ in range(300):
        sites = [
            site("alpha", backlog=backlog["alpha"]),
            site("beta", weight=2.0, backlog=backlog["beta"]),
        ]
        chosen = place(ask(), sites, BEST, now=NOW).chosen
        assert chosen is not None
        backlog[chosen] += 1
    # weight multiplies the score: beta wins until its 1 + load is twice alpha's
    assert abs((1 + backlog["beta"] / 100) - 2 * (1 + backlog["alpha"] / 100)) < 0.05, backlog


# --- strategies --------------------------------------------------------------------------------


def test_round_robin_rotates_over_eligible_sites() -> None:
    sites = [site("gamma"), site("alpha", backlog=90), site("down", health="down"), site("beta")]
    policy = Policy(strategy="round-robin")
    chosen = [place(ask(), sites, policy, now=NOW, rr=rr).chosen for rr in range(7)]
    assert chosen == ["alpha", "beta", "gamma", "alpha", "beta", "gamma", "alpha"]
    d = place(ask(), sites, policy, now=NOW, rr=4)
    assert d.strategy == "round-robin"
    assert [r.site for r in d.ranking] == ["beta", "gamma", "alpha", "down"]
    assert ranking_of(d, "gamma").reasons[-1] == "round-robin: turn 2 of 3 (counter 4)"
    assert ranking_of(d, "down").reasons == ["compute is down"]


def test_round_robin_spreads_evenly() -> None:
    sites = [site("alpha"), site("beta"), site("gamma")]
    policy = Policy(strategy="round-robin")
    counts = Counter(place(ask(), sites, policy, now=NOW, rr=rr).chosen for rr in range(99))
    assert counts == {"alpha": 33, "beta": 33, "gamma": 33}


def test_priority_follows_the_policy_then_score() -> None:
    sites = [
        site("alpha"),
        site("beta", backlog=50),
        site("gamma", backlog=80),
        site("delta", enabled=False),
        site("epsilon", backlog=10),
    ]
    policy = Policy(strategy="priority", priority=["delta", "gamma", "nowhere", "beta"])
    d = place(ask(), sites, policy, now=NOW)
    assert d.chosen == "gamma"
    assert [r.site for r in d.ranking] == ["gamma", "beta", "alpha", "epsilon", "delta"]
    assert ranking_of(d, "gamma").reasons[-1] == "priority 2 in the policy"
    assert ranking_of(d, "alpha").reasons[-1] == (
        "not in the policy's priority list: after those, by score"
    )


def test_priority_orders_the_rest_by_score_not_by_name() -> None:
    # the sites outside the policy's list: zulu (idle) before alpha (busy), whatever their names
    sites = [site("alpha", backlog=90), site("mike", backlog=40), site("zulu"), site("first", backlog=99)]
    d = place(ask(), sites, Policy(strategy="priority", priority=["first"]), now=NOW)
    assert [r.site for r in d.ranking] == ["first", "zulu", "mike", "alpha"]


def test_the_request_strategy_overrides_the_policy() -> None:
    sites = [site("alpha", backlog=50), site("beta")]
    policy = Policy(strategy="priority", priority=["alpha"])
    assert place(ask(), sites, policy, now=NOW).chosen == "alpha"
    d = place(ask(strategy="best"), sites, policy, now=NOW)
    assert (d.strategy, d.chosen) == ("best", "beta")


# --- the decision as a record ------------------------------------------------------------------


def test_decision_encodes_to_json_and_inputs_are_untouched() -> None:
    sites = [site("alpha", remaining={"m0001": 3.0}), site("beta", enabled=False)]
    before = msgspec.json.encode(sites)
    d = place(ask(), sites, BEST, now=NOW)
    assert msgspec.json.encode(sites) == before
    assert place(ask(), sites, BEST, now=NOW) == d
    doc = msgspec.json.decode(msgspec.json.encode(d))
    assert doc["chosen"] == "alpha"
    assert doc["ranking"][1] == {
        "site": "beta",
        "eligible": False,
        "score": None,
        "reasons": ["disabled by an admin"],
    }


# --- properties --------------------------------------------------------------------------------

_NAMES = st.lists(st.sampled_from([f"s{i}" for i in range(12)]), unique=True, max_size=8)
_floats = st.floats(allow_nan=True, allow_infinity=False, width=32)


@st.composite
def site_views(draw: st.DrawFn, name: str) -> SiteView:
    return SiteView(
        name=name,
        kind=draw(st.sampled_from(["sfapi", "firecrest", "iri"])),
        enabled=draw(st.booleans()),
        draining=draw(st.booleans()),
        weight=draw(st.floats(0, 100) | _floats),
        max_nodes=draw(st.none() | st.integers(0, 64)),
        max_walltime=draw(st.none() | st.integers(0, 200_000)),
        capacity=draw(st.integers(-5, 1000)),
        health=draw(st.sampled_from(["up", "degraded", "down", "unknown", "odd"])),
        checked_at=draw(st.none() | st.floats(NOW - 100, NOW + 5) | _floats),
        stale_after=draw(st.floats(0, 120)),
        circuit_open=draw(st.booleans()),
        consecutive_failures=draw(st.integers(0, 10)),
        backlog=draw(st.integers(-3, 10_000)),
        throughput=draw(_floats),
        remaining=draw(st.none() | st.dictionaries(st.sampled_from(["m0001", "m2"]), _floats)),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[PlacementRequest, list[SiteView], Policy, int]:
    names = draw(_NAMES)
    sites = [draw(site_views(n)) for n in names]
    maybe_names = st.lists(st.sampled_from([*names, "elsewhere"]), max_size=4)
    req = PlacementRequest(
        project="m0001",
        nodes=draw(st.integers(1, 80)),
        walltime=draw(st.none() | st.integers(60, 200_000)),
        site=draw(st.none() | st.sampled_from([*names, "elsewhere"])),
        sites=draw(st.none() | maybe_names),
        exclude=draw(maybe_names),
        strategy=draw(st.none() | st.sampled_from(STRATEGIES)),
    )
    policy = Policy(strategy=draw(st.sampled_from(STRATEGIES)), priority=draw(maybe_names))
    return req, sites, policy, draw(st.integers(0, 10**6))


@given(scenarios())
def test_decision_invariants(
    scenario: tuple[PlacementRequest, list[SiteView], Policy, int],
) -> None:
    req, sites, policy, rr = scenario
    d = place(req, sites, policy, now=NOW, rr=rr)
    assert sorted(r.site for r in d.ranking) == sorted(s.name for s in sites)
    flags = [r.eligible for r in d.ranking]
    assert flags == sorted(flags, reverse=True), "eligible sites come first"
    for r in d.ranking:
        assert r.reasons, r
        assert (r.score is not None) is r.eligible
        assert r.score is None or r.score >= 0
    if d.chosen is None:
        assert d.eligible == []
    else:
        assert d.chosen == d.eligible[0]
        chosen = next(s for s in sites if s.name == d.chosen)
        assert chosen.enabled and not chosen.draining and not chosen.circuit_open
        assert chosen.health in ("up", "degraded")
        assert req.site in (None, chosen.name) and chosen.name not in req.exclude
    if d.strategy == "best":
        scores = [r.score for r in d.ranking if r.eligible]
        assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]


def test_out_of_range_inputs_score_as_their_floor() -> None:
    # a view assembled from odd counters (a negative backlog, a zero capacity) scores as the
    # nearest sensible value, never raises and never outranks a healthy idle site
    assert score(site(capacity=0, backlog=1)) == score(site(capacity=1, backlog=1))
    assert score(site(backlog=-5)) == score(site(backlog=0))
    assert score(site(throughput=-3.0)) == score(site(throughput=0.0))
    assert score(site(weight=-1.0)) == 0.0
    assert score(site(consecutive_failures=-2)) == score(site(consecutive_failures=0))
    # and the smallest real amounts count
    assert score(site(backlog=1)) < score(site(backlog=0))
    assert score(site(throughput=1.0)) > score(site(throughput=0.0))


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (119, "119 s"), (120, "2 min"), (3600, "60 min"), (7199, "120 min"), (7200, "2.0 h"),
    (7741, "2.2 h"), (36_000, "10.0 h"),
])
def test_an_age_in_a_reason_reads_in_its_unit(seconds: float, text: str) -> None:
    """Seconds under two minutes, minutes under two hours, then hours (a stale site's reason)."""
    from broker.placement import _format_age

    assert _format_age(seconds) == text
