"""Site profiles and the translation of portable jobs (pure: adapters/profile.py, broker/portable.py)."""

from __future__ import annotations

import msgspec
import pytest

from adapters import registry
from adapters.profile import SystemProfile, Translation, translate
from adapters.psij import JobAttributes, JobSpec, ResourceSpec
from broker import config, facility_profiles, portable
from broker.config import ConfigError, PlacementConfig, SiteConfig
from broker.placement import PlacementRequest, Policy, SiteView, place
from broker.store import outcomes

PERLMUTTER = msgspec.convert(facility_profiles.PERLMUTTER, SystemProfile)
POLARIS = msgspec.convert(facility_profiles.POLARIS, SystemProfile)
DAINT = msgspec.convert(facility_profiles.DAINT, SystemProfile)
EIGER = msgspec.convert(facility_profiles.EIGER, SystemProfile)
HOUR = 3600


def job(nodes: int = 1, seconds: int | None = 600, gpus: int | None = None, **attrs: object) -> JobSpec:
    return JobSpec(
        executable="/bin/true",
        resources=ResourceSpec(node_count=nodes, gpu_cores_per_process=gpus),
        attributes=JobAttributes(duration=seconds, **attrs),  # type: ignore[arg-type]
    )


def ok(out: Translation | list[str]) -> Translation:
    assert isinstance(out, Translation), out
    return out


def test_a_small_job_at_nersc_gets_the_debug_qos_and_a_cpu_constraint() -> None:
    t = ok(translate(job(), PERLMUTTER, registry.vocabulary("sfapi"), "perlmutter"))
    a = t.spec.attributes
    assert (t.queue, t.node_type) == ("debug", "cpu")
    # a QOS, never a partition, at NERSC: the renderer writes --qos for queue_is_qos
    assert a.custom_attributes == {"queue_is_qos": "1", "slurm.constraint": "cpu"}
    assert a.queue_name == "debug"
    assert t.summary == "perlmutter: qos debug, -C cpu, 1 node, 10 min"


def test_nersc_beyond_debug_limits_goes_regular() -> None:
    t = ok(translate(job(nodes=30, seconds=6 * HOUR), PERLMUTTER, registry.vocabulary("sfapi"), "perlmutter"))
    assert t.queue == "regular" and t.summary == "perlmutter: qos regular, -C cpu, 30 nodes, 6 h"
    # 9 nodes for 10 minutes: over debug's 8 nodes
    assert ok(translate(job(nodes=9), PERLMUTTER, registry.vocabulary("sfapi"), "perlmutter")).queue == "regular"


def test_a_gpu_job_only_gets_gpu_nodes() -> None:
    t = ok(translate(job(gpus=1), PERLMUTTER, registry.vocabulary("sfapi"), "perlmutter"))
    assert t.node_type == "gpu" and t.spec.attributes.custom_attributes["slurm.constraint"] == "gpu"
    out = translate(job(gpus=1), EIGER, registry.vocabulary("firecrest"), "eiger")
    assert out == ["asks 1 GPUs per node; node types here: zen2 (128 cores, 0 GPUs, 256 GB)"]
    # 8 processes of 1 GPU each on one node: more GPUs than any node has
    greedy = msgspec.structs.replace(
        job(), resources=ResourceSpec(node_count=1, processes_per_node=8, gpu_cores_per_process=1)
    )
    out = translate(greedy, PERLMUTTER, registry.vocabulary("sfapi"), "perlmutter")
    assert isinstance(out, list) and out[0].startswith("asks 8 GPUs, 8 cores per node")


def test_alcf_fills_filesystems_and_picks_a_queue_by_size_band() -> None:
    v = registry.vocabulary("iri")
    small = ok(translate(job(), POLARIS, v, "polaris"))
    assert small.spec.attributes.queue_name == "debug"
    assert small.spec.attributes.custom_attributes == {"filesystems": "home:eagle"}
    assert small.summary == "polaris: queue debug, 1 node, 10 min, filesystems=home:eagle"
    # a user's own filesystems wins over the default
    mine = ok(translate(job(custom_attributes={"filesystems": "eagle"}), POLARIS, v, "polaris"))
    assert mine.spec.attributes.custom_attributes == {"filesystems": "eagle"}
    assert ok(translate(job(nodes=30, seconds=6 * HOUR), POLARIS, v, "polaris")).queue == "prod"  # medium band
    # 30 nodes for 7 hours: medium allows 6 h, and no other queue takes 30 nodes
    refused = translate(job(nodes=30, seconds=7 * HOUR), POLARIS, v, "polaris")
    assert isinstance(refused, list) and "prod allows at most 6 h for 30 nodes" in refused[0]
    # 2 nodes for 60 h: only preemptable (72 h)
    assert ok(translate(job(nodes=2, seconds=60 * HOUR), POLARIS, v, "polaris")).queue == "preemptable"


def test_a_walltime_under_the_queue_minimum_is_raised_and_said() -> None:
    t = ok(translate(job(seconds=60), POLARIS, registry.vocabulary("iri"), "polaris"))
    assert t.spec.attributes.duration == 300 and "5 min (the queue's minimum)" in t.summary


def test_a_named_queue_is_honoured_or_refused_with_the_list() -> None:
    v = registry.vocabulary("sfapi")
    t = ok(translate(job(queue_name="premium"), PERLMUTTER, v, "perlmutter"))
    assert t.spec.attributes.queue_name == "premium" and t.spec.attributes.custom_attributes["queue_is_qos"] == "1"
    out = translate(job(queue_name="prod"), PERLMUTTER, v, "perlmutter")
    assert out == ["has no qos 'prod' (qoss: debug, regular, shared, interactive, premium, preempt)"]
    # named but too small for the job
    out = translate(job(nodes=9, queue_name="debug"), PERLMUTTER, v, "perlmutter")
    assert out == ["no qos takes 9 nodes for 10 min: debug takes at most 8 nodes"]


def test_custom_attributes_pass_only_where_the_profile_allows() -> None:
    out = translate(job(custom_attributes={"filesystems": "home"}), PERLMUTTER, registry.vocabulary("sfapi"), "x")
    assert isinstance(out, list) and out[0].startswith("custom attribute 'filesystems' is not passed through here")
    t = ok(translate(job(custom_attributes={"slurm.mail-type": "END"}), DAINT, registry.vocabulary("firecrest"), "d"))
    assert t.spec.attributes.custom_attributes == {"slurm.mail-type": "END"}
    assert t.spec.attributes.queue_name == "debug"  # a partition at CSCS


def test_no_queue_takes_a_job_too_long_everywhere() -> None:
    out = translate(job(nodes=1, seconds=100 * HOUR), DAINT, registry.vocabulary("firecrest"), "daint")
    assert out == [
        "no partition takes 1 node for 100 h: debug allows at most 30 min for 1 node;"
        " normal allows at most 24 h for 1 node"
    ]


# -- config -------------------------------------------------------------------------------------
def _site(**kw: object) -> dict[str, object]:
    return {
        "name": "nersc",
        "kind": "sfapi",
        "url": "http://x",
        "systems": ["perlmutter"],
        "auth": {"client_id": "abcdefghijklm", "token_url": "http://x/t", "private_key_env": "K"},
        **kw,
    }


def test_config_checks_profiles_and_names_every_problem() -> None:
    bad = {
        "node_types": [{"name": "cpu", "cores": 1, "memory_gb": 1}],
        "queues": [
            {"name": "q", "min_nodes": 5, "max_nodes": 2, "max_walltime": 60, "node_types": ["gpu"], "auto": False}
        ],
    }
    with pytest.raises(ConfigError) as e:
        config.validate_site(_site(profiles={"perlmutter": bad, "frontier": facility_profiles.DAINT}), "sites[0]")
    assert e.value.problems == [
        "sites[0].profiles.perlmutter.queues[0] (q): min_nodes 5 is above max_nodes 2",
        "sites[0].profiles.perlmutter.queues[0] (q).node_types: no node type is named 'gpu' (known: cpu)",
        "sites[0].profiles.perlmutter.queues: at least one queue must be open to portable jobs (auto = true)",
        "sites[0].profiles.frontier: not one of the site's systems (perlmutter)",
    ]
    with pytest.raises(ConfigError) as e:
        config.validate_site(_site(profiles={"perlmutter": {"node_types": [], "queues": []}}), "sites[0]")
    assert "profiles" in e.value.problems[0]


def test_the_example_config_carries_the_published_profiles() -> None:
    s = config.load("config/three-facilities.toml")
    by = {x.name: x for x in s.sites}
    assert by["nersc"].profiles["perlmutter"] == PERLMUTTER
    assert by["cscs"].profiles == {"daint": DAINT, "eiger": EIGER}
    assert by["alcf"].profiles["polaris"] == POLARIS
    demo = {x.name: x for x in config.load("config/demo.toml").sites}
    assert demo["nersc"].profiles == {"perlmutter": PERLMUTTER}
    assert demo["cscs"].profiles == {"daint": DAINT}
    assert demo["alcf"].profiles == {"polaris": POLARIS}
    assert {s.account_for("beamline") for s in demo.values()} == {"m0002"}


# -- accounts and fit ---------------------------------------------------------------------------
def _cfg(**kw: object) -> SiteConfig:
    return config.validate_site(_site(profiles={"perlmutter": facility_profiles.PERLMUTTER}, **kw))


def test_the_account_is_the_sites_mapping_of_the_project() -> None:
    site = _cfg(accounts={"beamline": "m0002", "multi": ["m1", "m2"]})
    f = portable.fit(site, "beamline", job())
    assert f.reasons == [] and f.account == "m0002"
    assert f.translation is not None and f.translation.spec.attributes.account == "m0002"
    assert portable.fit(site, "other", job()).account == "other"  # unmapped: the same name
    # another account is refused, naming the field; one the mapping lists is allowed
    f = portable.fit(site, "beamline", job(account="m0001"))
    assert f.fields == ["spec.attributes.account"] and "account 'm0001' is not one project beamline" in f.reasons[0]
    f = portable.fit(site, "beamline", job(custom_attributes={"slurm.account": "m0001"}))
    assert f.fields == ["spec.attributes.custom_attributes.slurm.account"]
    f = portable.fit(site, "multi", job(account="m2"))
    assert f.reasons == [] and f.account == "m2"


def test_placement_refuses_sites_whose_profile_cannot_take_the_job() -> None:
    sites = [
        config.validate_site(
            {
                "name": "alcf",
                "kind": "iri",
                "url": "http://a",
                "systems": ["polaris"],
                "auth": {"token_env": "T"},
                "profiles": {"polaris": facility_profiles.POLARIS},
            }
        ),
        _cfg(),
    ]
    views = [SiteView(name=s.name, kind=s.kind, health="up", checked_at=1000.0) for s in sites]
    spec = job(nodes=30, seconds=30 * HOUR)  # only NERSC's regular QOS (48 h) takes it
    fits = portable.views(portable.fits(sites, "p", spec))
    d = place(PlacementRequest(project="p", nodes=30, walltime=30 * HOUR), views, Policy(), now=1001.0, fits=fits)
    assert d.eligible == ["nersc"] and d.waiting == []
    alcf = next(r for r in d.ranking if r.site == "alcf")
    assert alcf.reasons == [
        "no queue takes 30 nodes for 30 h: debug takes at most 2 nodes; debug-scaling takes at most 10 nodes;"
        " prod allows at most 6 h for 30 nodes; preemptable takes at most 10 nodes"
    ]
    nersc = next(r for r in d.ranking if r.site == "nersc")
    assert nersc.translated == "perlmutter: qos regular, -C cpu, 30 nodes, 30 h"


def test_a_demoted_site_comes_last_with_its_reason() -> None:
    views = [
        SiteView(name="a", kind="sfapi", health="up", checked_at=1000.0, demoted="6 of 6 refused"),
        SiteView(name="b", kind="sfapi", health="up", checked_at=1000.0, backlog=90),
    ]
    d = place(PlacementRequest(project="p", nodes=1, walltime=60), views, Policy(), now=1001.0)
    assert d.eligible == ["b", "a"]
    assert "demoted: 6 of 6 refused" in d.ranking[1].reasons[0]


def test_demotion_needs_enough_recent_bad_outcomes_and_ages_out() -> None:
    guard = PlacementConfig(demote_last=10, demote_window=120, demote_min=5, demote_ratio=0.5)
    bad = [f"bad:{1000 - i}" for i in range(5)]
    assert outcomes.demotion(bad, now=1000, guard=guard) == (
        "5 of its last 5 submissions were refused or failed within seconds"
    )
    assert outcomes.demotion(bad[:4], now=1000, guard=guard) is None  # fewer than demote_min
    # mostly accepted lately: not a black hole
    assert outcomes.demotion([f"ok:{1000 - i}" for i in range(6)] + bad, now=1000, guard=guard) is None
    # only the last demote_last count: older successes do not dilute a fresh run of refusals
    assert outcomes.demotion(bad * 2 + [f"ok:{900 - i}" for i in range(50)], now=1000, guard=guard)
    # recovers by itself once the refusals are older than the window
    assert outcomes.demotion(bad, now=1000 + 121, guard=guard) is None
