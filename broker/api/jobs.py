"""Jobs: create, read, list, cancel, placement preview. Final jobs past their retention are read
from the history database (broker/store/history.py) where Redis no longer has them: the same
body, the same project scopes."""

from __future__ import annotations

import time
from typing import Annotated, Any

import anyio
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from adapters.validation import unconstrained_problems
from broker import portable, queues, tracing
from broker.api.auth import require_project
from broker.api.openapi_docs import api_problems
from broker.api.problems import ApiError, FieldError
from broker.config import SiteConfig
from broker.durability import Durability, DurabilityError, Unconfirmed
from broker.intake import Replay, create_job, fingerprint, idem_decoder
from broker.placement import Policy, format_duration, place
from broker.sanitise import sanitise
from broker.schemas import CancelResult, Job, JobCreate, JobPage, PlacementRecord, RankedSite
from broker.snapshot import placement_request, site_views
from broker.states import FINAL, STATES
from broker.store.audit import AuditLog
from broker.store.history import HistoryUnavailable
from broker.store.jobs import decode_cursor, encode_cursor, job_from_hash, now_iso
from broker.store.sitecache import site_cache
from broker.store.tokens import TokenRecord


def _not_found(job_id: str) -> ApiError:
    return ApiError(404, "Not found", f"no job {job_id!r}")


def history_away(exc: HistoryUnavailable) -> ApiError:
    """The history database is out of reach: a 503 (as for Redis), naming it, never its password."""
    return ApiError(503, "Service unavailable", f"job history unavailable: {exc}", headers={"Retry-After": "5"})


async def job_hash(state: Any, job_id: str) -> dict[str, str] | None:
    """A job's record: in Redis, or (a final job past its retention) in the history database."""
    h = await state.jobs.get_hash(job_id)
    if h is None and state.history is not None:
        try:
            h = await state.history.get(job_id)
        except HistoryUnavailable as exc:
            raise history_away(exc) from None
    return h


def _spec_errors(body: JobCreate) -> list[FieldError]:
    """What the JobSpec's constraints cannot say (adapters.validation): the custom attributes
    the broker owns, exact environment names, the spec's total size.  Checked again by every
    renderer; here so that a job that could never be rendered is a 422, not a FAILED job."""
    return [FieldError(field=f, message=m, source="body") for f, m in unconstrained_problems(body.spec)]


def _account_errors(body: JobCreate, candidates: list[SiteConfig]) -> list[FieldError]:
    """A spec's account must be what the project is charged to at some candidate site (the
    site's mapping, default the project's name); anything else would charge someone else."""
    wanted = body.spec.attributes.account
    if not wanted or not candidates:
        return []
    allowed = sorted({a for c in candidates for a in c.accounts_allowed(body.project)})
    if wanted in allowed:
        return []
    return [
        FieldError(
            field="spec.attributes.account",
            message=f"project {body.project!r} is charged to {', '.join(allowed)}; leave account out "
            "or give one of those",
            source="body",
        )
    ]


def _refuse(errors: list[FieldError]) -> None:
    if errors:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        raise ApiError(422, "Validation failed", detail, errors=errors)


async def known_sites(request: Request[Any, Any, Any]) -> dict[str, SiteConfig]:
    return {s.config.name: s.config for s in await site_cache(request.app.state.sites).all()}


async def check_against_sites(request: Request[Any, Any, Any], body: JobCreate,
                              sites: dict[str, SiteConfig] | None = None) -> None:
    """Errors the client can fix now, rather than a job that fails later. ``sites``: the
    known sites, when the caller has read them (a batch reads them once for all its jobs)."""
    _refuse(_spec_errors(body))
    if sites is None:
        sites = await known_sites(request)
    hints = body.placement
    errors: list[FieldError] = []
    named = ([hints.site] if hints and hints.site else []) + (list(hints.sites) if hints and hints.sites else [])
    for name in named:
        if name not in sites:
            errors.append(
                FieldError(field="placement", message=f"no site is named {name!r}; known: {', '.join(sorted(sites))}")
            )
    if errors:
        raise ApiError(422, "Validation failed", errors[0].message, errors=errors)
    candidates = [sites[n] for n in named if n in sites] or list(sites.values())
    if hints and hints.exclude:
        candidates = [c for c in candidates if c.name not in hints.exclude]
    _refuse(_account_errors(body, candidates))
    _check_profiles(candidates, body)
    if candidates:
        # read once a second per process, not per request (broker/store/health.py)
        accounts = await request.app.state.accounts.get([c.name for c in candidates])
        _check_projects(candidates, accounts, body.project)


def _check_projects(candidates: list[SiteConfig], accounts: dict[str, set[str] | None], project: str) -> None:
    """A project that no allowed site has an account for is a 422 now: every facility would
    refuse the job (an unknown account), after a 202 and a trip through the queue. A site's
    accounts are what its health checks found (the facility's allocations, or FirecREST's
    userinfo); a site whose accounts are not known (not checked yet, or a facility that reports
    none) might take it."""
    missing: list[str] = []
    for c in candidates:
        known = accounts.get(c.name)
        mine = c.accounts_allowed(project)
        if known is None or any(a in known for a in mine):
            return
        # not the accounts it does have: those are other projects' business
        missing.append(f"{c.name}: no allocation for account {', '.join(mine)}")
    errors = [FieldError(field="project", message=m, source="body") for m in missing]
    raise ApiError(422, "Validation failed", f"no site knows project {project!r}: " + "; ".join(missing),
                   errors=errors)


def _check_profiles(candidates: list[SiteConfig], body: JobCreate) -> None:
    """A job that no allowed site's profile (or account mapping) takes is a 422 now, with
    every site's reasons, not a job that waits and fails later."""
    if not candidates:
        return
    system = body.placement.system if body.placement else None
    nodes, walltime = body.spec.nodes, body.spec.attributes.duration
    refusals: dict[str, list[tuple[str, str]]] = {}
    for c in candidates:
        out: list[tuple[str, str]] = []
        if nodes > c.limits.max_nodes:
            out.append(
                ("spec.resources.node_count", f"asks {nodes} nodes; this site allows at most {c.limits.max_nodes}")
            )
        if walltime and walltime > c.limits.max_walltime:
            out.append(
                (
                    "spec.attributes.duration",
                    f"asks {format_duration(walltime)} walltime;"
                    f" this site allows at most {format_duration(c.limits.max_walltime)}",
                )
            )
        # site by site, stopping at the first that takes it (a batch checks a thousand jobs)
        f = portable.fit(c, body.project, body.spec, system)
        out += list(zip(f.fields, f.reasons, strict=True))
        if not out:
            return  # one site takes it
        refusals[c.name] = out
    errors = [
        FieldError(field=field, message=f"{site}: {text}") for site, out in refusals.items() for field, text in out
    ]
    detail = "no site can take this job: " + "; ".join(
        f"{site}: {', '.join(text for _f, text in out)}" for site, out in refusals.items()
    )
    raise ApiError(422, "Validation failed", detail, errors=errors)


class JobController(Controller):
    path = "/api/v1/jobs"
    tags = ["jobs"]

    @post("/", operation_id="createJob", status_code=202, summary="Submit a job (202: accepted, will be placed)",
          response_description="Accepted: the job, to be placed",
          response_headers=[  # documentation_only: the handler sets them; value="" says "a string"
              ResponseHeader(name="Location", documentation_only=True, value="", description="the job's URL"),
              ResponseHeader(name="Idempotent-Replayed", documentation_only=True, value="",
                             description="true when this answers a repeat")],
          responses=api_problems(409, 413, 422))  # 409: an Idempotency-Key still being handled
    async def create(
        self,
        request: Request[TokenRecord, Any, Any],
        data: JSONBody[JobCreate],
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", max_length=200, required=False)
        ] = None,
    ) -> Response[Job]:  # sent as the bytes msgspec encoded (or stored, for a repeat)
        token = request.user
        require_project(token, data.project)
        await check_against_sites(request, data)
        st = request.app.state
        await ensure_durable(st.durability)
        idem = None
        fp = None
        if idempotency_key:
            idem = st.rkeys.idempotency(token.id, idempotency_key)
            fp = fingerprint(data)
            raw = await st.redis.get(idem)
            if raw is not None:  # the common repeat, answered without a thread hop
                return await _kept(st.durability, _replay(raw, fp))
        try:
            # one (WATCH/)MULTI/EXEC: nothing is claimed before everything is written
            job = await create_job(st.redis, st.sync_redis, st.rkeys, st.settings, data, token.name, idem, fp)
        except Replay as again:
            return await _kept(st.durability, _replay(again.raw, fp or ""))
        await confirm_durable(st.durability, [job.id], bool(idempotency_key))
        body: Any = msgspec.json.encode(job)
        return Response(
            body,
            status_code=202,
            media_type="application/json",
            headers={"Location": f"/api/v1/jobs/{job.id}"},
        )

    @get("/{job_id:str}", operation_id="getJob", summary="One job", responses=api_problems(404))
    async def read(self, request: Request[TokenRecord, Any, Any], job_id: FromPath[str]) -> Job:
        h = await job_hash(request.app.state, job_id)
        if h is None or not request.user.may_see(h["project"]):
            raise _not_found(job_id)  # same answer whether it exists or not: no hint
        job = job_from_hash(h)
        return job if request.user.role == "admin" else for_non_admins(job)

    @get("/", operation_id="listJobs", summary="Jobs, newest first, with cursor pagination",
         responses=api_problems())
    async def list_jobs(
        self,
        request: Request[TokenRecord, Any, Any],
        project: FromQuery[str | None] = None,
        state_filter: Annotated[str | None, QueryParameter(name="state", required=False)] = None,
        site: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> JobPage:
        token = request.user
        state = state_filter
        if state is not None and state not in STATES:
            raise ApiError(400, "Invalid request", f"state must be one of {', '.join(STATES)}")
        if project is not None:
            projects: list[str] | None = [project] if token.may_see(project) else []
        else:
            projects = None if token.all_projects else list(token.projects)
        if projects == []:
            return JobPage(items=[], next_cursor=None)
        try:
            after = decode_cursor(cursor) if cursor else None
        except ValueError:
            raise ApiError(400, "Invalid request", "cursor: not a cursor this API gave out") from None
        items, nxt = await _page(request.app.state, projects, state, site, limit, after)
        if token.role != "admin":
            items = [for_non_admins(j) for j in items]
        return JobPage(items=items, next_cursor=nxt)

    @delete("/{job_id:str}", operation_id="cancelJob", status_code=202, summary="Cancel a job",
            responses=api_problems(404))
    async def cancel(self, request: Request[TokenRecord, Any, Any], job_id: FromPath[str]) -> CancelResult:
        st = request.app.state
        h = await job_hash(st, job_id)
        if h is None or not request.user.may_see(h["project"]):
            raise _not_found(job_id)
        if h["state"] in FINAL:
            return CancelResult(id=job_id, state=h["state"], detail=f"the job is already {h['state']}; nothing changed")
        await st.jobs.set_fields(job_id, cancel_requested="1")
        user = request.user
        await AuditLog(st.redis, st.rkeys, st.settings.api.audit_max_entries).record(
            user.name, user.id, "job.cancel", job_id, {"state": h["state"]}, {"cancel_requested": True})
        await anyio.to_thread.run_sync(_enqueue_cancel, st.sync_redis, job_id)
        return CancelResult(
            id=job_id, state=h["state"], detail="cancel requested; the job reads CANCELED once the facility confirms"
        )


async def _page(st: Any, projects: list[str] | None, state: str | None, site: str | None, limit: int,
                after: tuple[int, str] | None) -> tuple[list[Job], str | None]:
    """One page of jobs from Redis and the history database, merged in the list's order (newest
    first, then id). Redis is read first: a job the mover takes between the two reads is then
    in both (shown once, as Redis had it), never in neither."""
    rows, more = await st.jobs.page_rows(projects=projects, state=state, site=site, limit=limit, after=after)
    merged: dict[str, tuple[int, str, Job]] = {jid: (s, jid, j) for s, jid, j in rows}
    if st.history is not None and (state is None or state in FINAL):
        try:
            old = await st.history.page(projects=projects, state=state, site=site, after=after, limit=limit + 1)
        except HistoryUnavailable as exc:
            raise history_away(exc) from None
        more = more or len(old) > limit
        for s, jid, h in old:
            if jid not in merged:
                merged[jid] = (s, jid, job_from_hash(h))
    ordered = sorted(merged.values(), key=lambda r: (r[0], r[1]), reverse=True)
    more = more or len(ordered) > limit
    page = ordered[:limit]
    nxt = encode_cursor(page[-1][0], page[-1][1]) if more and page else None
    return [j for _s, _i, j in page], nxt


def for_non_admins(job: Job) -> Job:
    """The job as a non-admin sees it: facility errors short and sanitised (broker/sanitise.py);
    the attempt's outcome is the error's category."""
    if job.message is None and not any(a.error for a in job.attempts):
        return job
    attempts = [msgspec.structs.replace(a, error=sanitise(a.error)) if a.error else a for a in job.attempts]
    return msgspec.structs.replace(job, message=sanitise(job.message), attempts=attempts)


def _enqueue_cancel(conn: Any, job_id: FromPath[str]) -> None:
    queues.queue(conn, queues.CANCEL).enqueue_call(
        queues.CANCEL_FN, args=(job_id,), retry=queues.submit_retry(10), timeout=60, result_ttl=60,
        meta=tracing.carrier(),  # the worker's cancel joins this request's trace (None when off)
    )


async def ensure_durable(d: Durability) -> None:
    """[durability] level disk: a 503 while the server does not fsync before it replies."""
    try:
        await d.ensure()
    except DurabilityError as exc:
        raise ApiError(503, "Service unavailable", f"the broker accepts no jobs now: {exc}",
                       headers={"Retry-After": str(d.cfg.retry_after)}) from None


def unconfirmed_detail(exc: Unconfirmed, ids: list[str], keyed: bool) -> str:
    """What a 503 says happened to the job(s) replicas did not confirm."""
    which = f"job {ids[0]} was" if len(ids) == 1 else f"{len(ids)} jobs were"
    again = ("send the same request again (same idempotency key) to get its 202 once replicas confirm it"
             if keyed else "a request sent again without an idempotency key makes another job")
    return (f"{which} written to Redis's primary and queued, but {exc.why()}: it is not undone and will run "
            f"unless the primary is lost before it replicates; {again}")


async def confirm_durable(d: Durability, ids: list[str], keyed: bool) -> None:
    """[durability] level replica: a 503 naming the job when replicas do not confirm it in time."""
    try:
        await d.confirm()
    except Unconfirmed as exc:
        headers = {"Retry-After": str(d.cfg.retry_after)}
        if len(ids) == 1:
            headers["Location"] = f"/api/v1/jobs/{ids[0]}"
        raise ApiError(503, "Service unavailable", unconfirmed_detail(exc, ids, keyed), headers=headers) from None


async def _kept(d: Durability, replayed: Response[Job]) -> Response[Job]:
    """A replayed 202 is a promise too: the replicas are asked again (level replica)."""
    location = str(replayed.headers.get("Location", ""))
    await confirm_durable(d, [location.rpartition("/")[2]], True)
    return replayed


def _replay(raw: bytes | str, fp: str) -> Response[Job]:
    prev = idem_decoder.decode(raw)
    if prev.fp != fp:
        raise ApiError(422, "Validation failed", "this Idempotency-Key was used with a different body")
    if prev.state != "done":
        raise ApiError(
            409,
            "Conflict",
            "a request with this Idempotency-Key is still being handled; retry shortly",
            headers={"Retry-After": "1"},
        )
    body: Any = prev.body.encode()
    return Response(
        body,
        status_code=202,
        media_type="application/json",
        headers={"Location": f"/api/v1/jobs/{prev.job_id}", "Idempotent-Replayed": "true"},
    )


class PlacementController(Controller):
    path = "/api/v1/placement"
    tags = ["jobs"]

    @post(
        "/",
        operation_id="previewPlacement",
        status_code=200,
        summary="The ranking a submission would get; submits nothing",
        responses=api_problems(413, 422),
    )
    async def preview(self, request: Request[TokenRecord, Any, Any], data: JSONBody[JobCreate]) -> PlacementRecord:
        require_project(request.user, data.project)
        await check_against_sites(request, data)
        st = request.app.state
        pc = st.settings.placement
        stored, views = await site_views(st.sites, st.health, st.jobs, pc)
        fitted = portable.fits(
            [s.config for s in stored], data.project, data.spec, data.placement.system if data.placement else None
        )
        decision = place(
            placement_request(data.project, data.spec, data.placement),
            views,
            Policy(strategy=pc.strategy, priority=pc.priority),
            now=time.time(),
            fits=portable.views(fitted),
        )
        return PlacementRecord(
            site=decision.chosen,
            strategy=decision.strategy,
            ranking=[
                RankedSite(
                    site=r.site, eligible=r.eligible, score=r.score, reasons=list(r.reasons), translated=r.translated
                )
                for r in decision.ranking
            ],
            decided_at=now_iso(),
        )
