"""The health and file-listing translations word by word (mutation testing found their details
unchecked): the order of health states, each component's detail text, incidents' components
and which incidents count as open, ``ls`` entries' names and types."""

from __future__ import annotations

import pytest

from adapters.iri import translate as iri
from adapters.iri.wire import WireIncident, WireResource
from adapters.sfapi import translate as sf

STATES = ["up", "degraded", "unknown", "down"]  # best to worst


@pytest.mark.parametrize("worst", [iri._worst, sf._worst])
def test_the_worst_state_wins_in_a_fixed_order(worst) -> None:  # type: ignore[no-untyped-def]
    for i, state in enumerate(STATES):
        for better in STATES[:i]:
            assert worst([better, state]) == state and worst([state, better]) == state
    assert worst(["up"]) == "up" and worst([]) == "unknown"


def test_iri_component_details_name_each_resource() -> None:
    h = iri.parse_health(
        [
            WireResource(id="p", name="polaris", resource_type="compute", current_status="up"),
            WireResource(id="e", name="eagle", resource_type="storage", current_status="up"),
            WireResource(id="h", name="home", resource_type="storage", current_status=None),
            WireResource(id="x", name=None, resource_type="network"),
        ],
        [],
        ["polaris"],
    )
    comps = {c.name: c for c in h.components}
    assert comps["compute"].detail == "polaris: up"
    assert (comps["filesystem"].state, comps["filesystem"].detail) == ("unknown", "eagle: up, home: unknown")
    assert comps["x"].state == "unknown"  # a resource without a name goes by its id
    assert list(comps) == ["compute", "filesystem", "x"]


def test_iri_without_our_compute_resource_says_which_was_missing() -> None:
    h = iri.parse_health([], [], ["polaris", "sophia"])
    (c,) = h.components
    assert (c.name, c.state, c.detail) == ("compute", "unknown", "no compute resource named polaris, sophia")


def test_iri_incidents_open_ones_with_their_component() -> None:
    resources = [
        WireResource(id="p", name="polaris", resource_type="compute", current_status="up"),
        WireResource(id="e", name="eagle", resource_type="storage", current_status="up"),
        WireResource(id="w", name="web", resource_type="website", current_status="up"),
    ]
    uri = "https://x/api/v1/status/resources/"
    incidents = [
        WireIncident(id="a", name="maintenance", resolution="pending", resource_uris=[uri + "e"]),
        WireIncident(id="b", description="slow pages", resolution="extended", resource_uris=[uri + "w"]),
        WireIncident(id="c", resource_uris=[uri + "zz", uri + "p"]),  # no resolution: unresolved
        WireIncident(id="d", name="done", resolution="completed", resource_uris=[uri + "p"]),
        WireIncident(id="e", name="elsewhere", resolution="unresolved", resource_uris=[uri + "nothing"]),
    ]
    h = iri.parse_health(resources, incidents, ["polaris"])
    assert [(i.id, i.summary, i.component) for i in h.incidents] == [
        ("a", "maintenance", "filesystem"),
        ("b", "slow pages", "web"),
        ("c", "c", "compute"),
        ("e", "elsewhere", None),
    ]


def _status(name: str, status: str, **kw: object) -> sf.StatusWire:
    return sf.StatusWire(name=name, status=status, **kw)  # type: ignore[arg-type]


def test_sfapi_components_and_their_details() -> None:
    comps = sf.components_of(
        [
            _status("perlmutter", "degraded", description="Rolling reboot", notes=["until 5pm"]),
            _status("dtn01", "active", system_type="compute"),  # another compute system: not ours
            _status("dna", "unavailable", system_type="filesystem", notes=["scheduled"]),
            _status("cfs", "active", system_type="filesystem"),
            _status("hpss", "degraded", system_type="storage"),
            _status("ssh-proxy", "active", system_type="service"),
            _status("website", "unavailable", system_type="service"),  # not a component we report
        ],
        ["perlmutter", "muller"],
    )
    assert [(c.name, c.state, c.detail) for c in comps] == [
        ("compute", "degraded", "Rolling reboot - until 5pm"),
        ("compute:muller", "unknown", "muller is not listed by /status"),
        ("filesystem", "down", "dna: unavailable - scheduled"),
        ("storage", "degraded", "hpss: degraded"),
        ("login", "up", ""),
    ]


def test_sfapi_each_bad_member_is_named_and_a_missing_group_is_skipped() -> None:
    comps = sf.components_of(
        [
            _status("dna", "unavailable", system_type="filesystem"),
            _status("perlmutter", "active"),
            _status("cfs", "degraded", system_type="filesystem", description="slow metadata"),
            _status("ssh-proxy", "unavailable", system_type="service"),
        ],
        ["perlmutter"],
    )
    assert [(c.name, c.state, c.detail) for c in comps] == [
        ("compute", "up", "active"),
        ("filesystem", "down", "dna: unavailable; cfs: slow metadata"),
        ("login", "down", "ssh-proxy: unavailable"),  # no storage resource: no storage component
    ]


def _entry(perms: str | None, name: str | None, size: float | None = 3, date: str | None = "d") -> sf.DirEntryWire:
    return sf.DirEntryWire(perms=perms, size=size, date=date, name=name)


def test_sfapi_ls_entries() -> None:
    got = sf.file_entries([
        _entry("drwxr-xr-x", "."),
        _entry("drwxr-xr-x", ".."),
        _entry("drwxr-xr-x", "sub/", date="2026-01-01"),
        _entry("-rw-r--r--", "/global/homes/e/elvis/a -> b.txt", size=12),
        _entry("lrwxrwxrwx", "link -> /target/with -> arrow"),
        _entry(None, "odd"),
        _entry("prw-r--r--", "pipe"),
    ])
    assert [(e.name, e.type, e.size, e.mtime, e.permissions) for e in got] == [
        ("sub", "directory", 3, "2026-01-01", "rwxr-xr-x"),
        ("a -> b.txt", "file", 12, "d", "rw-r--r--"),  # only a link's arrow is a link
        ("link", "link", 3, "d", "rwxrwxrwx"),
        ("odd", "other", 3, "d", None),
        ("pipe", "other", 3, "d", "rw-r--r--"),
    ]
