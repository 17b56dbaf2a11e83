"""GET /api/v1/usage: final jobs, node-hours and failures per site and project over a time
window (broker/usage.py), of the projects the token may see."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import QueryParameter

from broker.api.jobs import history_away
from broker.api.openapi_docs import api_problems
from broker.api.problems import ApiError, FieldError
from broker.schemas import UsageReport
from broker.store.history import HistoryUnavailable
from broker.store.tokens import TokenRecord
from broker.usage import report

_TIME_HELP = ("ISO 8601, with a zone (2026-11-30T12:00:00Z, 2026-11-30T13:00:00+01:00), or a date "
              "(2026-11-30: its midnight UTC)")


def parse_time(value: str | None, name: str) -> float | None:
    """Unix time of an ISO 8601 time with a zone, or of a date's midnight UTC; a 400 naming the
    parameter otherwise (a time without a zone would mean the server's, which nobody can see)."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
        t = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(name, f"{value!r} is not a time: {_TIME_HELP}") from None
    if t.tzinfo is None:
        raise _bad(name, f"{value!r} has no time zone: add Z (UTC) or an offset such as +01:00")
    return t.timestamp()


def _bad(name: str, message: str) -> ApiError:
    return ApiError(400, "Invalid request", f"{name}: {message}",
                    errors=[FieldError(field=name, message=message, source="query")])


class UsageController(Controller):
    path = "/api/v1/usage"
    tags = ["jobs"]

    @get("/", operation_id="getUsage", summary="Final jobs, node-hours and failures per site and project",
         description="Jobs that reached a final state (COMPLETED, FAILED, CANCELED) in [from, to), whether "
         "still in Redis or moved to the history database. Node-hours: the job's nodes times its run time "
         "(first seen ACTIVE to final); jobs never seen ACTIVE are counted in `unmeasured`. Only the "
         "projects the token may see.",
         responses=api_problems())
    async def usage(
        self,
        request: Request[TokenRecord, Any, Any],
        project: Annotated[str | None, QueryParameter(required=False, max_length=64,
                                                      description="only this project")] = None,
        site: Annotated[str | None, QueryParameter(required=False, max_length=64, description="only this site")] = None,
        start: Annotated[str | None, QueryParameter(name="from", required=False, max_length=64,
                                                    description=f"jobs final at or after it; {_TIME_HELP}")] = None,
        end: Annotated[str | None, QueryParameter(name="to", required=False, max_length=64,
                                                  description=f"jobs final before it; {_TIME_HELP}")] = None,
    ) -> UsageReport:
        token = request.user
        t0, t1 = parse_time(start, "from"), parse_time(end, "to")
        if t0 is not None and t1 is not None and t1 <= t0:
            raise _bad("to", "must be after from")
        if project is not None:
            if not token.may_see(project):
                raise ApiError(403, "Forbidden", f"the token {token.name!r} may not see project {project!r}")
            projects: list[str] | None = [project]
        else:
            projects = None if token.all_projects else list(token.projects)
        st = request.app.state
        try:
            return await report(st.jobs, st.history, projects=projects, site=site, start=t0, end=t1)
        except HistoryUnavailable as exc:
            raise history_away(exc) from None
