"""The broker's public bodies (API.md §1), as msgspec Structs."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from adapters.psij import JobSpec
from adapters.validation import DESCRIPTIONS, PROJECT

Strategy = Literal["best", "round-robin", "priority"]
ProjectName = Annotated[str, msgspec.Meta(pattern=PROJECT, description=DESCRIPTIONS[PROJECT])]


class PlacementHints(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    site: str | None = None
    sites: list[str] | None = None
    exclude: list[str] = []
    strategy: Strategy | None = None
    system: str | None = None


class JobCreate(msgspec.Struct, forbid_unknown_fields=True):
    project: ProjectName
    spec: JobSpec
    placement: PlacementHints | None = None


class RankedSite(msgspec.Struct):
    site: str
    eligible: bool
    score: float | None
    reasons: list[str]
    # the request in the site's own words, from its profile ("perlmutter: qos debug, -C cpu, 1 node, 10 min")
    translated: str | None = None


class PlacementRecord(msgspec.Struct):
    site: str | None
    strategy: str
    ranking: list[RankedSite]
    decided_at: str | None = None


class Attempt(msgspec.Struct):
    site: str
    at: str
    # abandoned: a try given up without the facility confirming it holds no job (the site is
    # avoided for this job while another can take it, and is watched for a late copy); canceled-copy: such a copy showed
    # up there and was canceled (its native_id)
    outcome: Literal[
        "submitted", "retriable", "rejected", "uncertain", "settled", "auth", "abandoned", "canceled-copy"
    ]
    error: str | None = None
    native_id: str | None = None


class HistoryEntry(msgspec.Struct):
    state: str
    at: str
    detail: str | None = None


class Job(msgspec.Struct):
    id: str
    project: str
    name: str | None
    state: str
    site: str | None
    system: str | None
    native_id: str | None
    native_state: str | None
    exit_code: int | None
    message: str | None
    created_at: str
    updated_at: str
    placement: PlacementRecord | None
    attempts: list[Attempt]
    history: list[HistoryEntry]
    spec: JobSpec
    cancel_requested: bool = False


class JobPage(msgspec.Struct):
    items: list[Job]
    next_cursor: str | None


class CancelResult(msgspec.Struct):
    id: str
    state: str
    detail: str


IdempotencyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=200,
                                             description="as the Idempotency-Key header of a single submission")]
MAX_BATCH = 1000  # jobs in one POST /api/v1/jobs/batch


class JobBatchItem(msgspec.Struct, forbid_unknown_fields=True):
    """One job of a batch: a submission's body, and its own idempotency key"""

    project: ProjectName
    spec: JobSpec
    placement: PlacementHints | None = None
    idempotency_key: IdempotencyKey | None = None

    def create(self) -> JobCreate:
        return JobCreate(project=self.project, spec=self.spec, placement=self.placement)


class JobBatch(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 1,000 jobs, each accepted or refused on its own"""

    jobs: Annotated[list[JobBatchItem], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class UsageRow(msgspec.Struct):
    """Final jobs of one project at one site (site None: never placed)."""

    site: str | None
    project: str
    jobs: int  # final jobs: completed + failed + canceled
    completed: int
    failed: int
    canceled: int
    node_hours: float  # nodes x run time (first seen ACTIVE to final), summed
    unmeasured: int  # jobs with no run time (never seen ACTIVE): counted in jobs, not in node_hours


class UsageTotals(msgspec.Struct):
    jobs: int
    completed: int
    failed: int
    canceled: int
    node_hours: float
    unmeasured: int


class UsageReport(msgspec.Struct):
    start: str | None  # jobs that reached their final state at or after this time (None: since ever)
    end: str | None  # and before this one (None: until now)
    generated_at: str
    totals: UsageTotals
    rows: list[UsageRow]  # by site, then project
