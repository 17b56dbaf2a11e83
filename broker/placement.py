"""Where a job should run: filter the sites, order the rest, and say why for every site.

Pure: no I/O and no clock (``now`` is passed in), so a worker, the ``POST /placement`` preview and
the tests all get the same answer from the same inputs. The caller reads each site's state from
Redis into a ``SiteView`` and stores the returned ``Decision`` on the job.

1. **Filter** (hard constraints, ``_refusals``): every reason a site cannot take the job is
   recorded, not only the first, so a person sees everything to fix at once. The caller passes
   each site's *fit* (``SiteFit``: what the site's profile says of this job, from
   ``broker/portable.py``) and the sites that already refused the job.
2. **Score** (``_score``), higher is better::

       score = weight * health * speed / ((1 + backlog / capacity) * (1 + 0.5 * failed_checks))
       speed = 0.8 + 0.2 * throughput / (throughput + 10)     # throughput in jobs/min
       health = 1 when compute is up, 0.5 when degraded

   Backlog relative to capacity dominates: picking the best site again and again while each pick
   raises its backlog spreads a burst in proportion to capacity. Weight multiplies the score: an
   idle site of weight 2 is preferred to an idle one of weight 1, and in a burst it keeps winning
   until its 1 + backlog/capacity is twice the other's; a site of weight 0 stays eligible but
   comes last. Throughput (jobs finished per minute) earns at most 20 %, half of it at
   ``THROUGHPUT_HALF``; ``degraded`` compute halves a score; failed health checks that have not
   yet opened the circuit cost a little each. A *demoted* site (a black hole: most of its
   recent submissions were refused or failed within seconds) keeps ``DEMOTION_FACTOR`` of its
   score: it is tried after every healthy site, and recovers by itself as its record ages.
3. **Order** by strategy: ``best`` (score, then name), ``round-robin`` (eligible sites by name,
   rotated by the caller's counter ``rr``), ``priority`` (the policy's list first, the rest by
   score). Ineligible sites follow, by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from broker.health import is_stale

__all__ = [
    "STRATEGIES",
    "Decision",
    "PlacementRequest",
    "Policy",
    "SiteFit",
    "SiteRanking",
    "SiteView",
    "format_duration",
    "place",
]

STRATEGIES: tuple[str, ...] = ("best", "priority", "round-robin")

# Score factors; the module docstring says why they have this shape.
HEALTH_FACTOR: dict[str, float] = {"up": 1.0, "degraded": 0.5}
THROUGHPUT_SHARE = 0.2  # most of a score a fast site can earn over a slow one
THROUGHPUT_HALF = 10.0  # jobs/min at which half that share is earned
FAILURE_PENALTY = 0.5  # n failed checks (circuit still closed) divide a score by 1 + 0.5 n
SCORE_DIGITS = 4  # scores are stored rounded, so the API shows 0.8824, not 0.88235294117647
DEMOTION_FACTOR = 0.02  # what a demoted site keeps of its score: last, but not excluded


class SiteView(msgspec.Struct, frozen=True):
    """What placement knows of one site right now."""

    name: str
    kind: str
    enabled: bool = True
    draining: bool = False
    weight: float = 1.0  # the admin's preference, 0..100
    max_nodes: int | None = None
    max_walltime: int | None = None  # seconds
    capacity: int = 100  # broker jobs it should hold at once (for backlog scoring)
    health: str = "unknown"  # compute state: up / degraded / down / unknown
    checked_at: float | None = None  # epoch seconds of the last successful check
    stale_after: float = 30.0  # seconds; an older check reads "unknown"
    circuit_open: bool = False
    consecutive_failures: int = 0
    backlog: int = 0  # the broker's unfinished jobs there
    throughput: float = 0.0  # jobs finished per minute recently
    # project -> node-hours left there; None = unknown (no filter). A project missing from a
    # known dict has no allocation there.
    remaining: dict[str, float] | None = None
    demoted: str | None = None  # why it is demoted (black-hole guard), None when it is not


class SiteFit(msgspec.Struct, frozen=True):
    """What a site's profile says of one job: every reason it cannot take it (empty: it can),
    and the request it would send there, in the site's words."""

    reasons: list[str] = []
    translated: str | None = None


class PlacementRequest(msgspec.Struct, frozen=True):
    project: str
    nodes: int
    walltime: int | None  # seconds
    site: str | None = None  # the job insists on one site
    sites: list[str] | None = None  # allowed sites
    exclude: list[str] = []
    strategy: str | None = None  # best | round-robin | priority (None: the policy's default)
    refused: dict[str, str] = {}  # site -> its words, for sites that already refused this job


class Policy(msgspec.Struct, frozen=True):
    strategy: str = "best"
    priority: list[str] = []  # for "priority": site names, most preferred first


class SiteRanking(msgspec.Struct, omit_defaults=True):
    site: str
    eligible: bool
    score: float | None  # None when ineligible
    reasons: list[str]  # sentences a person understands
    translated: str | None = None  # the request in the site's words ("perlmutter: qos debug, ...")


class Decision(msgspec.Struct, omit_defaults=True):
    strategy: str
    ranking: list[SiteRanking]  # eligible first, in the order they will be tried; then the rest
    chosen: str | None
    # ineligible sites where only their state is in the way (down, draining, no allocation
    # left...): the job itself fits there, it may run there later
    waiting: list[str] = []

    @property
    def eligible(self) -> list[str]:
        return [r.site for r in self.ranking if r.eligible]

    def summary(self) -> str:
        """One line for an error message or a log: the choice, or why every site was refused."""
        if self.chosen is not None:
            return f"placed at {self.chosen} ({self.strategy})"
        if not self.ranking:
            return "no eligible site: no sites are configured"
        why = "; ".join(f"{r.site}: {', '.join(r.reasons)}" for r in self.ranking)
        return f"no eligible site: {why}"


def format_duration(seconds: float) -> str:
    """Walltime as people write it: 48h00m, 0h30m, 1h00m05s."""
    total = int(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if s else f"{h}h{m:02d}m"


def _format_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _Ask(msgspec.Struct, frozen=True):
    """The request, prepared once so the per-site loop does no repeated work."""

    project: str
    nodes: int
    walltime: int | None
    walltime_text: str
    site: str | None
    allowed: frozenset[str] | None
    allowed_text: str
    excluded: frozenset[str]
    refused: dict[str, str]


def _prepare(req: PlacementRequest) -> _Ask:
    allowed = frozenset(req.sites) if req.sites is not None else None
    return _Ask(
        project=req.project,
        nodes=req.nodes,
        walltime=req.walltime,
        walltime_text=format_duration(req.walltime) if req.walltime is not None else "",
        site=req.site,
        allowed=allowed,
        allowed_text=", ".join(sorted(allowed)) if allowed else "(none)",
        excluded=frozenset(req.exclude),
        refused=dict(req.refused),
    )


def _excluded(s: SiteView, ask: _Ask) -> list[str]:
    """Why the job's own placement (or an earlier refusal) keeps it from ``s``."""
    out: list[str] = []
    if ask.site is not None and s.name != ask.site:
        out.append(f"excluded by the job's placement: it asks for site {ask.site}")
    if ask.allowed is not None and s.name not in ask.allowed:
        out.append(f"excluded by the job's placement: not among its sites ({ask.allowed_text})")
    if s.name in ask.excluded:
        out.append("excluded by the job's placement: listed in exclude")
    if s.name in ask.refused:
        out.append(f"refused this job: {ask.refused[s.name]}")
    return out


def _misfits(s: SiteView, ask: _Ask, fit: SiteFit | None) -> list[str]:
    """Why the job can never run at ``s``: the site's limits and its profile."""
    out: list[str] = []
    if s.max_nodes is not None and ask.nodes > s.max_nodes:
        out.append(f"asks {_plural(ask.nodes, 'node')}; this site allows at most {s.max_nodes}")
    if s.max_walltime is not None and ask.walltime is not None and ask.walltime > s.max_walltime:
        out.append(
            f"asks {ask.walltime_text} walltime;"
            f" this site allows at most {format_duration(s.max_walltime)}"
        )
    if fit is not None:
        out.extend(fit.reasons)
    return out


def _refusals(s: SiteView, ask: _Ask, now: float) -> list[str]:
    """Every reason the site's state keeps the job from ``s`` now; empty when nothing does."""
    out: list[str] = []
    if not s.enabled:
        out.append("disabled by an admin")
    if s.draining:
        out.append("draining: no new jobs are placed here")
    out.extend(_health_refusals(s, now))
    if s.remaining is not None:
        left = s.remaining.get(ask.project)
        if left is None:
            out.append(f"project {ask.project} has no allocation here")
        elif not left > 0:  # NaN too
            out.append(f"project {ask.project} has no allocation left here ({left:.1f} node-hours)")
    return out


def _health_refusals(s: SiteView, now: float) -> list[str]:
    out: list[str] = []
    if s.checked_at is None:
        out.append("health unknown: never checked")
    elif is_stale(s.checked_at, s.stale_after, now):
        out.append(
            f"health unknown: last successful check {_format_age(now - s.checked_at)} ago,"
            f" stale after {_format_age(s.stale_after)}"
        )
    elif s.health == "down":
        out.append("compute is down")
    elif s.health == "unknown":
        out.append("compute state is unknown: the last check could not tell")
    elif s.health not in HEALTH_FACTOR:
        out.append(f"compute state {s.health!r} is not one placement knows")  # refuse, not guess
    if s.circuit_open:
        n = s.consecutive_failures
        out.append(
            f"circuit open after {n} consecutive failed {'check' if n == 1 else 'checks'}"
            if n > 0
            else "circuit open"
        )
    return out


def _score(s: SiteView) -> tuple[float, str]:
    """The score of an eligible site and the sentence that explains it."""
    capacity = s.capacity if s.capacity > 0 else 1
    backlog = s.backlog if s.backlog > 0 else 0
    tp = s.throughput if s.throughput > 0 else 0.0
    weight = float(s.weight) if s.weight > 0 else 0.0
    health = HEALTH_FACTOR[s.health]
    fails = s.consecutive_failures if s.consecutive_failures > 0 else 0
    speed = 1.0 - THROUGHPUT_SHARE + THROUGHPUT_SHARE * tp / (tp + THROUGHPUT_HALF)
    raw = weight * health * speed / ((1.0 + backlog / capacity) * (1.0 + FAILURE_PENALTY * fails))
    if s.demoted:
        raw *= DEMOTION_FACTOR
    score = round(raw, SCORE_DIGITS)
    failed = f", {_plural(fails, 'failed check')} recently" if fails else ""
    demoted = f", demoted: {s.demoted}" if s.demoted else ""
    shown = f"{score:.4f}" if s.demoted else f"{score:.2f}"  # a demoted score is small
    why = (
        f"backlog {backlog} of {capacity}, {tp:.1f} jobs/min finished, compute {s.health}"
        f"{failed}{demoted}, weight {weight} → score {shown}"
    )
    return score, why


def _by_score(r: SiteRanking) -> tuple[float, str]:
    return (-(r.score or 0.0), r.site)


def _by_name(r: SiteRanking) -> str:
    return r.site


def _order(
    strategy: str, eligible: list[SiteRanking], policy: Policy, rr: int
) -> list[SiteRanking]:
    """The eligible sites in the order they will be tried, with the strategy's own note."""
    if strategy == "best" or not eligible:
        return sorted(eligible, key=_by_score)
    if strategy == "round-robin":
        ring = sorted(eligible, key=_by_name)
        start = rr % len(ring)
        ordered = ring[start:] + ring[:start]
        for i, r in enumerate(ordered):
            r.reasons.append(f"round-robin: turn {i + 1} of {len(ordered)} (counter {rr})")
        return ordered
    # priority: the policy's list, in its order, then everything else by score
    rank = {name: i for i, name in enumerate(policy.priority)}
    first = sorted((r for r in eligible if r.site in rank), key=lambda r: rank[r.site])
    rest = sorted((r for r in eligible if r.site not in rank), key=_by_score)
    for r in first:
        r.reasons.append(f"priority {rank[r.site] + 1} in the policy")
    for r in rest:
        r.reasons.append("not in the policy's priority list: after those, by score")
    return first + rest


def place(
    req: PlacementRequest,
    sites: Sequence[SiteView],
    policy: Policy,
    *,
    now: float,
    rr: int = 0,
    fits: Mapping[str, SiteFit] | None = None,
) -> Decision:
    """Rank every site for ``req``; ``chosen`` is the first to try, or None when none fits.

    ``rr`` is the round-robin counter (the caller increments it atomically, per decision).
    ``fits``: each site's profile verdict on the job (a site missing from it has no profile).
    Raises ValueError for a strategy that is not one of ``STRATEGIES``.
    """
    strategy = req.strategy or policy.strategy
    if strategy not in STRATEGIES:
        raise ValueError(
            f"unknown placement strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}"
        )
    ask = _prepare(req)
    eligible: list[SiteRanking] = []
    refused: list[SiteRanking] = []
    waiting: list[str] = []
    for s in sites:
        fit = fits.get(s.name) if fits is not None else None
        translated = fit.translated if fit is not None else None
        excluded = _excluded(s, ask)
        misfits = _misfits(s, ask, fit)
        reasons = excluded + _refusals(s, ask, now) + misfits
        if reasons:
            refused.append(SiteRanking(s.name, False, None, reasons, translated))
            if not excluded and not misfits:
                waiting.append(s.name)
        else:
            score, why = _score(s)
            eligible.append(SiteRanking(s.name, True, score, [why], translated))
    ordered = _order(strategy, eligible, policy, rr)
    refused.sort(key=_by_name)
    return Decision(
        strategy=strategy,
        ranking=ordered + refused,
        chosen=ordered[0].site if ordered else None,
        waiting=sorted(waiting),
    )
