"""Prometheus metrics for the whole broker, kept in Redis and rendered by any API replica.

Why Redis rather than per-process registries: the API replicas and the workers are separate
processes (often on separate hosts), and most of what an operator wants to see happens in the
workers. Prometheus' multiprocess mode needs a shared directory (one host), and a port per
worker means a scrape target per worker that comes and goes with it. Redis is already what all
of them share, so:

* gauges are computed from Redis at scrape time (jobs by state, health, backlog, queue depths):
  nothing to keep in step, they cannot drift;
* counters the workers make (placement decisions, submission attempts, jobs by state and site)
  are HINCRBYs inside the Lua scripts that write the job (broker/store/jobs.py), so a count
  never disagrees with the record it counts and costs no extra round trip;
* latency histograms (HTTP requests, adapter calls) and request counts are buffered in the
  process that measures them and added to Redis hashes in one pipeline at most every
  ``FLUSH_EVERY`` seconds (and when the process stops), so the hot paths make no Redis call.

Every family is therefore broker-wide: scrape one replica (or the service address), not each
one, or sum() double counts. A scrape costs two Redis round trips (the sites, then one
pipeline with everything else), whatever the number of jobs.

Redis layout (``<ns>:metrics:<family>`` hashes): labels joined by a tab, then for histograms a
tab and the bucket's index in ``BUCKETS`` (``len(BUCKETS)`` for +Inf) or ``sum``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from broker import queues
from broker.config import PlacementConfig
from broker.health import HealthRecord, effective, visible_components
from broker.states import FINAL, STATES
from broker.store import outcomes
from broker.store.keys import Keys
from broker.store.sites import StoredSite

# seconds; facility calls range from milliseconds (a cached token) to tens of seconds (a slow POST)
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FLUSH_EVERY = 1.0  # seconds between a process' writes of its buffered observations
SEP = "\t"  # between label values in a hash field: never in a route template, site or state name

HTTP_REQUESTS = "http_requests"
HTTP_LATENCY = "http_latency"
ADAPTER_LATENCY = "adapter_latency"
# written by the Lua scripts in broker/store/jobs.py (the names are spelled out there)
PLACEMENTS = "placements"
ATTEMPTS = "attempts"
SITE_JOBS = "jobs"
HISTORY = "history"  # final jobs moved to the history database, by state (broker/tasks/archive.py)

_health_dec = msgspec.json.Decoder(HealthRecord)
_HEALTH = {"up": 1, "degraded": 0.5, "down": 0, "unknown": -1}
# attempt outcomes that are not failures (the others are the failure's category)
_SUCCESS = frozenset({"submitted", "settled"})


class Recorder:
    """This process' observations not yet in Redis, flushed in one pipeline at most every
    ``FLUSH_EVERY`` seconds, from the loop that observed them (no thread, no timer task)."""

    def __init__(self, r: aioredis.Redis, keys: Keys):
        self.r = r
        self.keys = keys
        self._ints: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._floats: defaultdict[tuple[str, str], float] = defaultdict(float)
        self._last = time.monotonic()
        self._flushing: asyncio.Task[None] | None = None

    def count(self, family: str, labels: Sequence[str], n: int = 1) -> None:
        self._ints[(family, SEP.join(labels))] += n
        self._maybe_flush()

    def observe(self, family: str, labels: Sequence[str], seconds: float) -> None:
        prefix = SEP.join(labels)
        self._ints[(family, f"{prefix}{SEP}{bisect_left(BUCKETS, seconds)}")] += 1
        self._floats[(family, f"{prefix}{SEP}sum")] += seconds
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if now - self._last < FLUSH_EVERY or (self._flushing is not None and not self._flushing.done()):
            return
        self._last = now
        with contextlib.suppress(RuntimeError):  # no running loop (a synchronous caller): the next one flushes
            self._flushing = asyncio.get_running_loop().create_task(self.flush())

    async def settled(self) -> None:
        """Until a flush under way has written what it took: a caller that flushes to read the
        counts back (a scrape, a test, the last flush at exit) must see them."""
        pending = self._flushing
        if pending is not None and pending is not asyncio.current_task() and not pending.done():
            with contextlib.suppress(Exception):
                await pending

    async def flush(self) -> None:
        await self.settled()
        taken = self.take()
        if not taken[0] and not taken[1]:
            return
        try:
            async with self.r.pipeline(transaction=False) as p:
                self.write(p, taken)
                await p.execute()
        except Exception:
            self.give_back(taken)

    def take(self) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], float]]:
        """What is buffered, now no longer (``give_back`` it if it cannot be written)."""
        taken = (self._ints, self._floats)
        self._ints, self._floats = defaultdict(int), defaultdict(float)
        return taken

    def write(self, p: Any, taken: tuple[dict[tuple[str, str], int], dict[tuple[str, str], float]]) -> None:
        """Queue the additions in pipeline ``p`` (a scrape writes its own process' with its reads)."""
        ints, floats = taken
        for (family, field), n in ints.items():
            p.hincrby(self.keys.metrics(family), field, n)
        for (family, field), x in floats.items():
            p.hincrbyfloat(self.keys.metrics(family), field, x)

    def give_back(self, taken: tuple[dict[tuple[str, str], int], dict[tuple[str, str], float]]) -> None:
        # Redis away: keep the counts for the next flush (additions commute). A pipeline that
        # failed half way may count some twice; metrics tolerate that, jobs never see it
        for k, n in taken[0].items():
            self._ints[k] += n
        for k, x in taken[1].items():
            self._floats[k] += x

    async def aclose(self) -> None:
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        with contextlib.suppress(Exception):
            await self.flush()


class _Families:
    """A collector that hands prometheus_client the families built for one scrape."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def scrape(
    r: aioredis.Redis, keys: Keys, sites: list[StoredSite], guard: PlacementConfig, recorder: Recorder | None = None
) -> bytes:
    """The exposition text of every family. ``sites``: the stored sites (the first round trip);
    ``recorder``: this process' own buffered observations, written ahead of the reads in the
    same pipeline (the second round trip) so that a scrape shows them."""
    names = [s.config.name for s in sites]
    hashes = (SITE_JOBS, PLACEMENTS, ATTEMPTS, HTTP_REQUESTS, HTTP_LATENCY, ADAPTER_LATENCY, HISTORY)
    if recorder:
        await recorder.settled()
    taken = recorder.take() if recorder else ({}, {})
    async with r.pipeline(transaction=False) as p:
        if recorder:
            recorder.write(p, taken)
        writes = len(taken[0]) + len(taken[1])
        for s in STATES:
            p.zcard(keys.jobs_by_state(s))
        p.mget([keys.health(n) for n in names] or [keys.health("")])
        for n in names:
            p.hlen(keys.assigned(n))
        for n in names:
            p.lrange(keys.outcomes(n), 0, -1)
        p.get(keys.auth_failures_total)
        for h in hashes:
            p.hgetall(keys.metrics(h))
        for q in queues.ALL_QUEUES:
            p.llen(f"rq:queue:{q}")  # RQ's own keys (rq.Queue.key, rq.ScheduledJobRegistry.key)
            p.zcard(f"rq:scheduled:{q}")
        try:
            res: list[Any] = await p.execute()
        except Exception:
            if recorder:
                recorder.give_back(taken)
            raise
    it = iter(res[writes:])
    state_counts = [next(it) for _ in STATES]
    raw_health = next(it)
    backlogs = [next(it) for _ in names]
    recent = [next(it) for _ in names]
    auth_total = next(it)
    got = {h: _text_dict(next(it)) for h in hashes}
    depths = [(q, next(it), next(it)) for q in queues.ALL_QUEUES]

    now = time.time()
    fams: list[Metric] = []
    jobs = GaugeMetricFamily("superfed_jobs", "Jobs known to the broker, by state", labels=["state"])
    for s, n in zip(STATES, state_counts, strict=True):
        jobs.add_metric([s], n)
    fams.append(jobs)
    site_jobs = GaugeMetricFamily(
        "superfed_site_jobs", "Jobs by state and the site that holds them (none: never placed)",
        labels=["state", "site"],
    )
    site_jobs.add_metric(["NEW", "none"], state_counts[0])  # STATES[0] is NEW: a NEW job is at no site
    for field, n in sorted(got[SITE_JOBS].items()):
        state, _, site = field.partition(SEP)
        site_jobs.add_metric([state, site or "none"], int(n))
    fams.append(site_jobs)

    health = GaugeMetricFamily("superfed_site_health", "1 up, 0.5 degraded, 0 down, -1 unknown", labels=["site"])
    components = GaugeMetricFamily(
        "superfed_site_component_health",
        "A site's components as its last check saw them: 1 up, 0.5 degraded, 0 down, -1 unknown",
        labels=["site", "component"],
    )
    backlog = GaugeMetricFamily("superfed_site_backlog", "Unfinished broker jobs placed at the site", labels=["site"])
    demoted = GaugeMetricFamily(
        "superfed_site_demoted",
        "1 when the black-hole guard demotes the site (recent submissions refused or failed at once)",
        labels=["site"],
    )
    for stored, raw, n, entries in zip(sites, raw_health if names else [], backlogs, recent, strict=True):
        name = stored.config.name
        rec = _health_dec.decode(raw) if raw else None
        health.add_metric([name], _HEALTH[effective(rec, stored.config, now)])
        for c in visible_components(rec, stored.config, now) if rec else []:
            components.add_metric([name, c.name], _HEALTH.get(c.state, -1))
        backlog.add_metric([name], n)
        why = outcomes.demotion([_text(e) for e in entries], now=now, guard=guard)
        demoted.add_metric([name], 1 if why else 0)
    fams += [health, components, backlog, demoted]

    placements = CounterMetricFamily(
        "superfed_placement_decisions",
        "Placement decisions: the chosen site and the strategy that chose it (site none: no eligible site)",
        labels=["site", "reason"],
    )
    for field, n in sorted(got[PLACEMENTS].items()):
        site, _, reason = field.partition(SEP)
        placements.add_metric([site if site != "nil" else "none", reason], int(n))
    attempts = CounterMetricFamily(
        "superfed_submission_attempts", "Submission tries at a site, by outcome", labels=["site", "outcome"]
    )
    failures = CounterMetricFamily(
        "superfed_submission_failures",
        "Submission tries that did not make a job: rejected (by the site), retriable, auth, uncertain",
        labels=["site", "category"],
    )
    for field, n in sorted(got[ATTEMPTS].items()):
        site, _, outcome = field.partition(SEP)
        attempts.add_metric([site, outcome], int(n))
        if outcome not in _SUCCESS:
            failures.add_metric([site, outcome], int(n))
    fams += [placements, attempts, failures]

    depth = GaugeMetricFamily("superfed_queue_depth", "RQ jobs waiting in a queue", labels=["queue"])
    scheduled = GaugeMetricFamily(
        "superfed_queue_scheduled", "RQ jobs waiting for a retry's delay to pass", labels=["queue"]
    )
    for q, waiting, later in depths:
        depth.add_metric([q], waiting)
        scheduled.add_metric([q], later)
    fams += [depth, scheduled]

    requests = CounterMetricFamily(
        "superfed_http_requests", "API requests by route template, method and status",
        labels=["method", "route", "status"],
    )
    for field, n in sorted(got[HTTP_REQUESTS].items()):
        requests.add_metric(field.split(SEP), int(n))
    fams.append(requests)
    fams.append(_histogram("superfed_http_request_duration_seconds", "API request latency by route template",
                           ["method", "route"], got[HTTP_LATENCY]))
    fams.append(_histogram("superfed_adapter_call_duration_seconds",
                           "Calls to a facility (through its adapter) by site and operation",
                           ["site", "operation"], got[ADAPTER_LATENCY]))
    auth = CounterMetricFamily(
        "superfed_auth_failures",
        "Failed authentications (no token, or an unknown, revoked or expired one), every replica together",
    )
    auth.add_metric([], int(auth_total or 0))
    fams.append(auth)
    moved = CounterMetricFamily(
        "superfed_history_moved", "Final jobs moved from Redis to the history database, by state", labels=["state"]
    )
    for state in sorted(FINAL):  # every final state from the start (0 until one moves): rate() sees the first
        moved.add_metric([state], int(got[HISTORY].get(state, 0)))
    fams.append(moved)

    reg = CollectorRegistry()
    reg.register(_Families(fams))
    return generate_latest(reg)


def _histogram(name: str, doc: str, labels: list[str], raw: dict[str, str]) -> HistogramMetricFamily:
    """Per-bucket counts (not cumulative, as stored) into Prometheus' cumulative buckets."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for field, value in raw.items():
        prefix, _, slot = field.rpartition(SEP)
        counts, total = series.setdefault(prefix, ([0] * (len(BUCKETS) + 1), [0.0]))
        if slot == "sum":
            total[0] = float(value)
        elif slot.isdigit() and int(slot) <= len(BUCKETS):
            counts[int(slot)] += int(value)
    fam = HistogramMetricFamily(name, doc, labels=labels)
    for prefix, (counts, total) in sorted(series.items()):
        cumulative, running = [], 0
        for bound, n in zip([*(str(b) for b in BUCKETS), "+Inf"], counts, strict=True):
            running += n
            cumulative.append((bound, running))
        fam.add_metric(prefix.split(SEP), cumulative, total[0])
    return fam


def _text(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


def _text_dict(d: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in d.items()}

