"""The usage report: final jobs, node-hours and failures per site and project over a time
window, from the final jobs still in Redis and those moved to the history database
(broker/store/history.py), each counted once.

A job belongs to the window its final state falls in. Its node-hours are its nodes (the spec's,
as PSI/J derives them) times its run time: from the first time the broker saw it ACTIVE to its
final state (polls see a start within a poll interval); a job never seen ACTIVE has none and is
counted as ``unmeasured``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from broker.schemas import UsageReport, UsageRow, UsageTotals
from broker.states import FINAL
from broker.store.history import HistoryDB, Usage, usage_of
from broker.store.jobs import JobStore, now_iso

CHUNK = 1000  # jobs read from Redis per round trip
_FIELDS = ("id", "project", "state", "site", "spec", "history", "updated")

Key = tuple[str, str]  # (site, project)


class _Acc:
    __slots__ = ("canceled", "completed", "failed", "node_s", "unmeasured")

    def __init__(self) -> None:
        self.completed = self.failed = self.canceled = self.unmeasured = 0
        self.node_s = 0.0

    def add(self, state: str, jobs: int, node_s: float, unmeasured: int) -> None:
        if state == "COMPLETED":
            self.completed += jobs
        elif state == "FAILED":
            self.failed += jobs
        elif state == "CANCELED":
            self.canceled += jobs
        self.node_s += node_s
        self.unmeasured += unmeasured


async def _in_redis(jobs: JobStore, projects: Sequence[str] | None, site: str | None, start: float | None,
                    end: float | None) -> dict[str, Usage]:
    """The final jobs in Redis that the report covers, by id."""
    r, k = jobs.r, jobs.keys
    allowed = set(projects) if projects is not None else None
    # a job ends after it is created: none created after the window's end is in it
    top = str(int(end * 1_000_000)) if end is not None else "+inf"
    out: dict[str, Usage] = {}
    for state in sorted(FINAL):
        offset = 0
        while True:
            ids = cast(list[str], await r.zrangebyscore(k.jobs_by_state(state), "-inf", top, start=offset, num=CHUNK))
            if not ids:
                break
            offset += len(ids)
            async with r.pipeline(transaction=False) as p:
                for jid in ids:
                    p.hmget(k.job(jid), list(_FIELDS))
                got = await p.execute()
            for values in got:
                h = {f: v for f, v in zip(_FIELDS, values, strict=True) if v is not None}
                if "id" not in h or h.get("state") not in FINAL:
                    continue  # moved to the history meanwhile (counted there)
                if allowed is not None and h["project"] not in allowed:
                    continue
                u = usage_of(h)
                if site is not None and u.site != site:
                    continue
                if (start is not None and u.finished_at < start) or (end is not None and u.finished_at >= end):
                    continue
                out[h["id"]] = u
            if len(ids) < CHUNK:
                break
    return out


async def report(jobs: JobStore, history: HistoryDB | None, *, projects: Sequence[str] | None, site: str | None,
                 start: float | None, end: float | None) -> UsageReport:
    """``projects`` None: every project. Redis is read first, then the database: a job moved in
    between is in both, and is counted from the database (which says which of those it holds)."""
    resident = await _in_redis(jobs, projects, site, start, end)
    acc: dict[Key, _Acc] = {}
    if history is not None:
        grouped, moved = await history.usage(projects=projects, site=site, start=start, end=end,
                                             seen=list(resident))
        for s, p, state, n, node_s, unmeasured in grouped:
            acc.setdefault((s, p), _Acc()).add(state, n, node_s, unmeasured)
        for jid in moved & resident.keys():
            del resident[jid]  # counted from the database
    for u in resident.values():
        node_s = u.nodes * u.run_s if u.run_s is not None else 0.0
        acc.setdefault((u.site, u.project), _Acc()).add(u.state, 1, node_s, int(u.run_s is None))
    rows = [
        UsageRow(site=s or None, project=p, jobs=a.completed + a.failed + a.canceled, completed=a.completed,
                 failed=a.failed, canceled=a.canceled, node_hours=round(a.node_s / 3600, 6), unmeasured=a.unmeasured)
        for (s, p), a in sorted(acc.items())
    ]
    totals = UsageTotals(
        jobs=sum(x.jobs for x in rows), completed=sum(x.completed for x in rows), failed=sum(x.failed for x in rows),
        canceled=sum(x.canceled for x in rows), node_hours=round(sum(a.node_s for a in acc.values()) / 3600, 6),
        unmeasured=sum(x.unmeasured for x in rows),
    )
    return UsageReport(start=now_iso(start) if start is not None else None,
                       end=now_iso(end) if end is not None else None, generated_at=now_iso(), totals=totals, rows=rows)
