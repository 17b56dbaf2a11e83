"""Compute endpoints: submit (qsub), status (qstat [-x]), update (qalter), cancel (qdel)."""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.params import FromPath, FromQuery, QueryParameter

from simulators.common.scheduler import PENDING, SimJob, SubmitError
from simulators.iri import catalog, pbs
from simulators.iri.common import both, fac, is_v2, ok, read_json, resource_or_404, user_of
from simulators.iri.problems import Problem
from simulators.iri.state import IriFacility, Replay

Flag = FromQuery[bool | None]  # default None on each handler
FILTER_KEYS = (
    "job_ids",
    "ids",
    "state",
    "states",
    "name",
    "account",
    "project",
    "queue_name",
    "queue",
    "user",
)


def _system(f: IriFacility, resource_id: str) -> Any:
    return f.systems[resource_or_404(f, resource_id, "compute").name]


def _job_or_404(sysm: Any, job_id: str, user: str, *, historical: bool = True) -> SimJob:
    job = sysm.get(pbs.seq_of(job_id))
    if job is None or job.user != user or (job.final and not historical):
        raise Problem(404, f"qstat: Unknown Job Id {job_id}")
    return job


def _refuse_when_down(f: IriFacility, what: str) -> None:
    for component in ("compute", "scheduler"):
        if f.is_down(component):
            incident = f.open_incidents.get(component)
            ref = f" (incident {incident.id})" if incident else ""
            note = f.component_notes.get(component)
            raise Problem(
                503,
                f"{what} is down{ref}" + (f": {note}" if note else ""),
                slug="resource-unavailable",
            )


@post(both("/compute/job/{resource_id:str}"), status_code=200)
async def submit_job(
    request: Request[Any, Any, Any], resource_id: FromPath[str]
) -> Response[bytes]:
    user = user_of(request)
    f = fac(request)
    sysm = _system(f, resource_id)
    raw = await request.body()
    spec = read_json(raw, pbs.WireJobSpec, "job_spec")
    key = request.headers.get("idempotency-key")
    if key and is_v2(request):  # v2 only: the header is not in v1
        return await idempotent(f, (user, "submit_job", key), raw, lambda: _submit(f, sysm, spec, user))
    return _submit(f, sysm, spec, user)


def _submit(f: IriFacility, sysm: Any, spec: pbs.WireJobSpec, user: str) -> Response[bytes]:
    if spec.executable is None and spec.container is None:
        raise Problem(
            422,
            "Executable must be provided",
            invalid_params=[
                {"name": "job_spec.executable", "reason": "Executable must be provided"}
            ],
        )
    _refuse_when_down(f, sysm.name)
    try:
        queue, nodes, seconds, filesystems = pbs.check(
            spec, sysm, f.settings.projects, strict=f.settings.enforce_policy
        )
        a = spec.attributes
        assert a is not None
        job = sysm.submit(
            name=spec.name or (posixpath.basename(spec.executable) if spec.executable else "STDIN"),
            user=user,
            script=pbs.script_of(spec, queue, nodes, seconds, filesystems),
            nodes=nodes,
            walltime_s=seconds,
            partition=queue,
            account=a.account,
            command=pbs.command_of(spec),
            workdir=spec.directory,
            stdout_path=spec.stdout_path,
            stderr_path=spec.stderr_path,
            environment=dict(spec.environment),
            extra={"spec": msgspec.to_builtins(spec), "filesystems": filesystems},
        )
    except pbs.QsubError as exc:
        raise Problem(422, str(exc), slug="job-rejected") from None
    except SubmitError as exc:
        raise Problem(422, f"qsub: {exc}", slug="job-rejected") from None
    return ok(pbs.job_body(job, sysm.accepting, include_spec=False))


@get(both("/compute/status/{resource_id:str}/{job_id:str}"), sync_to_thread=False)
def get_job(
    request: Request[Any, Any, Any],
    resource_id: FromPath[str],
    job_id: FromPath[str],
    historical: Flag = None,
    include_spec: Flag = None,
) -> Response[bytes]:
    user = user_of(request)
    sysm = _system(fac(request), resource_id)
    job = _job_or_404(sysm, job_id, user, historical=historical is not False)
    return ok(pbs.job_body(job, sysm.accepting, include_spec=bool(include_spec)))


def _as_set(filters: dict[str, Any], *keys: str) -> set[str] | None:
    for key in keys:
        if key in filters and filters[key] is not None:
            value = filters[key]
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str | int) for v in values):
                raise Problem(
                    422,
                    f"filter {key!r} takes a string or a list of strings",
                    invalid_params=[{"name": f"filters.{key}", "reason": "expected string(s)"}],
                )
            return {str(v) for v in values}
    return None


def _select(sysm: Any, filters: dict[str, Any], user: str, historical: bool) -> list[SimJob]:
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        raise Problem(
            422,
            f"unknown filter(s): {', '.join(unknown)}; supported: {', '.join(FILTER_KEYS)}",
            invalid_params=[{"name": f"filters.{k}", "reason": "unknown filter"} for k in unknown],
        )
    ids = _as_set(filters, "job_ids", "ids")
    states = _as_set(filters, "state", "states")
    names = _as_set(filters, "name")
    accounts = _as_set(filters, "account", "project")
    queues = _as_set(filters, "queue_name", "queue")
    users = _as_set(filters, "user")
    sysm.advance()
    if ids is not None:  # by id: one lookup each, whatever the size of the history
        found = (sysm.jobs.get(pbs.seq_of(i)) for i in ids)
        candidates = sorted((j for j in found if j is not None), key=lambda j: int(j.id))
    else:
        candidates = list(sysm.jobs.values())
    out = []
    for job in candidates:
        if job.user != user or (job.final and not historical):
            continue
        if users is not None and job.user not in users:
            continue
        if names is not None and job.name not in names:
            continue
        if accounts is not None and job.account not in accounts:
            continue
        if queues is not None and job.partition not in queues:
            continue
        if (
            states is not None
            and pbs.iri_state(pbs.pbs_state(job), pbs.exit_status(job)) not in states
        ):
            continue
        out.append(job)
    return out


@post(both("/compute/status/{resource_id:str}"), status_code=200)
async def get_jobs(
    request: Request[Any, Any, Any],
    resource_id: FromPath[str],
    offset: Annotated[int, QueryParameter(ge=0)] = 0,
    limit: Annotated[int, QueryParameter(ge=0, le=1000)] = 100,
    historical: Flag = None,
    include_spec: Flag = None,
) -> Response[bytes]:
    user = user_of(request)
    sysm = _system(fac(request), resource_id)
    raw = await request.body()
    filters = read_json(raw, dict[str, Any] | None, "filters") if raw.strip() else None
    quirks = fac(request).quirks
    if quirks.ignore_job_filter:  # some servers list every job whatever the body says
        filters = None
    if quirks.page_cap is not None:
        limit = min(limit, quirks.page_cap)
    jobs = _select(sysm, filters or {}, user, historical=bool(historical))
    spec = bool(include_spec)
    return ok([pbs.job_body(j, sysm.accepting, spec) for j in jobs[offset : offset + limit]])


@put(both("/compute/job/{resource_id:str}/{job_id:str}"), status_code=200)
async def update_job(
    request: Request[Any, Any, Any], resource_id: FromPath[str], job_id: FromPath[str]
) -> Response[bytes]:
    """qalter: name, walltime, node count and custom attributes of a job still queued."""
    user = user_of(request)
    sysm = _system(fac(request), resource_id)
    spec = read_json(await request.body(), pbs.WireJobSpec, "job_spec")
    job = _job_or_404(sysm, job_id, user)
    if job.state != PENDING:
        raise Problem(409, pbs.BAD_STATE)
    queue = catalog.QUEUE_BY_NAME.get(job.partition)
    if queue and not fac(request).settings.enforce_policy:
        queue = catalog.RELAXED.get(queue.name, queue)
    a, r = spec.attributes, spec.resources
    walltime = a.duration if a and a.duration else job.walltime_s
    nodes = r.node_count if r and r.node_count else job.nodes
    if queue and (
        nodes > min(queue.max_nodes or sysm.total_nodes, sysm.total_nodes)
        or walltime > queue.walltime_limit(nodes)
        or nodes < queue.min_nodes
    ):
        raise Problem(
            422, "qalter: Job violates queue and/or server resource limits", slug="job-rejected"
        )
    job.walltime_s, job.nodes = walltime, nodes
    stored = job.extra["spec"]
    if spec.name:
        job.name = stored["name"] = spec.name
    stored.setdefault("attributes", {})["duration"] = walltime
    stored.setdefault("resources", {})["node_count"] = nodes
    if a and a.custom_attributes:
        stored["attributes"].setdefault("custom_attributes", {}).update(a.custom_attributes)
    return ok(pbs.job_body(job, sysm.accepting, include_spec=False))


async def idempotent(
    f: IriFacility, scope: tuple[str, str, str], raw: bytes, run: Callable[[], Response[bytes]]
) -> Response[bytes]:
    """The reference server's Idempotency-Key semantics (app/idempotency.py): the same key
    and body replay the first answer, another body is 422, a request still in flight is 409;
    a failure releases the key so the client may try again."""
    if f.quirks.no_idempotency_store:
        raise Problem(
            501,
            "Idempotency-Key provided but no idempotency store is configured "
            "(set IRI_IDEMPOTENCY_STORE).",
        )
    body_hash = hashlib.sha256(_canonical(raw)).hexdigest()
    held = f.replays.get(scope)
    if held is not None:
        if held.body_hash != body_hash:
            raise Problem(422, "Idempotency-Key reused with a different request body.")
        if not held.done:
            raise Problem(
                409,
                "A request with this Idempotency-Key is already in progress.",
                headers={"Retry-After": "2"},
            )
        return Response(
            held.body,
            status_code=200,
            media_type="application/json",
            headers={"Idempotency-Key-Reply": "hit"},
        )
    entry = f.replays[scope] = Replay(body_hash)
    try:
        await f.held.wait()  # a test holds submissions here to see the 409
        resp = run()
    except BaseException:
        f.replays.pop(scope, None)
        raise
    entry.done, entry.body = True, resp.content
    resp.headers["Idempotency-Key-Reply"] = "miss"
    return resp


def _canonical(raw: bytes) -> bytes:
    """The body as sorted JSON, so key order and spacing do not make a "different body"."""
    return json.dumps(msgspec.json.decode(raw), sort_keys=True).encode()


@delete(both("/compute/cancel/{resource_id:str}/{job_id:str}"), status_code=204)
async def cancel_job(
    request: Request[Any, Any, Any], resource_id: FromPath[str], job_id: FromPath[str]
) -> None:
    user = user_of(request)
    sysm = _system(fac(request), resource_id)
    job = sysm.get(pbs.seq_of(job_id))
    if job is None or job.user != user:
        raise Problem(404, f"qdel: Unknown Job Id {job_id}")
    if job.final:
        raise Problem(409, f"{pbs.FINISHED} {job_id}")
    sysm.cancel(job.id, by=user)


ROUTES = [submit_job, get_job, get_jobs, update_job, cancel_job]
