"""Many jobs in one request: ``POST /api/v1/jobs/batch``.

Each job is checked as ``POST /api/v1/jobs`` checks one (its body, the token's projects, the
sites' limits and profiles, its idempotency key) and accepted or refused on its own: a refusal
is that job's problem document in the answer, never the batch's. The accepted ones are written
in one round trip to Redis (broker/intake.py, ``create_jobs``)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.exceptions import HTTPException

from broker.api.auth import require_project
from broker.api.jobs import check_against_sites, ensure_durable, known_sites, unconfirmed_detail
from broker.api.openapi_docs import api_problems
from broker.api.problems import ApiError, FieldError, Problem, from_http, readable
from broker.durability import Unconfirmed
from broker.intake import BatchItem, Replay, create_jobs, fingerprint, idem_decoder
from broker.schemas import MAX_BATCH, Job, JobBatchItem
from broker.store.tokens import TokenRecord


class JobBatchResult(msgspec.Struct, omit_defaults=True):
    """One job of a batch: accepted (`status` 202, `job`; `replayed` when its idempotency key
    had been answered before) or refused (`problem`: the problem document the single submission
    would have answered; nothing of that job was written)"""

    index: int  # the job's place in the request's `jobs`, from 0
    status: int
    job: Job | None = None
    problem: Problem | None = None
    replayed: bool = False


class JobBatchAnswer(msgspec.Struct):
    """Every job of the batch, in the request's order"""

    accepted: int
    refused: int
    results: list[JobBatchResult]


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    jobs: list[msgspec.Raw]  # each decoded on its own: a bad job is that job's 422


class _Result(msgspec.Struct, omit_defaults=True):
    """JobBatchResult as sent: the job's JSON as intake (or the stored first answer) encoded it."""

    index: int
    status: int
    job: msgspec.Raw | None = None
    problem: Problem | None = None
    replayed: bool = False


class _JobId(msgspec.Struct):
    id: str


class _Answer(msgspec.Struct):
    accepted: int
    refused: int
    results: list[_Result]


_envelope = msgspec.json.Decoder(_Envelope)
_item = msgspec.json.Decoder(JobBatchItem)
_enc = msgspec.json.Encoder()
_id_dec = msgspec.json.Decoder(_JobId)
_AT = re.compile(r"^(.*) - at `\$\.?(.*)`$", re.S)


def _decode_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> ApiError:
    """A job that does not decode: msgspec's message, the field it names split off."""
    text = str(exc)
    m = _AT.match(text)
    field, message = (m.group(2) or "body", m.group(1)) if m else ("body", text)
    message = readable(message)
    return ApiError(422, "Validation failed", f"{field}: {message}",
                    errors=[FieldError(field=field, message=message, source="body")])


def _problem(exc: ApiError, path: str) -> Problem:
    return Problem(type=exc.type_ or f"https://superfed.dev/problems/{exc.status_code}", title=exc.title or "Error",
                   status=exc.status_code, detail=exc.detail, errors=exc.errors, instance=path)


def _refused(index: int, exc: ApiError, path: str) -> _Result:
    return _Result(index=index, status=exc.status_code, problem=_problem(exc, path))


def _replayed(index: int, raw: bytes | str, fp: str, path: str) -> _Result:
    """A job whose idempotency key has an answer: that answer, as the single POST replays it."""
    prev = idem_decoder.decode(raw)
    if prev.fp != fp:
        return _refused(index, ApiError(422, "Validation failed", "idempotency_key: this key was used with a "
                                        "different body", errors=[FieldError(
                                            field="idempotency_key", message="used before with a different body",
                                            source="body")]), path)
    if prev.state != "done" or prev.body is None:
        return _refused(index, ApiError(409, "Conflict", "a request with this idempotency_key is still being "
                                        "handled; send this job again shortly"), path)
    return _Result(index=index, status=202, job=msgspec.Raw(prev.body.encode()), replayed=True)


class JobBatchController(Controller):
    path = "/api/v1/jobs/batch"
    tags = ["jobs"]

    @post("/", operation_id="createJobs", status_code=200,
          summary=f"Submit up to {MAX_BATCH:,} jobs at once, each accepted or refused on its own",
          response_description="Every job's answer, in the request's order: 202 with the job, or its problem",
          responses=api_problems(413, 422))  # 413: more jobs than a batch holds (or a body too big)
    async def create_many(self, request: Request[TokenRecord, Any, Any]) -> Response[JobBatchAnswer]:
        # the body is read here rather than by Litestar, so that a bad job is that job's 422;
        # the schema of what it takes (JobBatch) is set by openapi_docs.document
        try:
            envelope = _envelope.decode(await request.body())
        except msgspec.ValidationError as exc:
            raise _decode_error(exc) from None
        except msgspec.DecodeError:
            raise ApiError(400, "Invalid request", "the body is not JSON") from None
        n = len(envelope.jobs)
        if n > MAX_BATCH:
            raise ApiError(413, "Payload too large", f"a batch holds at most {MAX_BATCH:,} jobs and this one has "
                           f"{n:,}; send them in batches of {MAX_BATCH:,}")
        if n == 0:
            raise ApiError(422, "Validation failed", "jobs: give at least one job",
                           errors=[FieldError(field="jobs", message="give at least one job", source="body")])
        token = request.user
        st = request.app.state
        await ensure_durable(st.durability)  # level disk: nothing written while the server cannot keep it
        path = request.url.path
        results: list[_Result | None] = [None] * n
        todo: list[tuple[int, BatchItem]] = []
        sites = await known_sites(request)  # once for the batch (a read of Redis)
        for i, raw in enumerate(envelope.jobs):
            try:
                item = _item.decode(raw)
                body = item.create()
                require_project(token, body.project)
                await check_against_sites(request, body, sites)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                results[i] = _refused(i, _decode_error(exc), path)
                continue
            except ApiError as exc:
                results[i] = _refused(i, exc, path)
                continue
            except HTTPException as exc:  # the token's project (403)
                results[i] = _refused(i, from_http(exc), path)
                continue
            if item.idempotency_key is None:
                todo.append((i, BatchItem(body)))
            else:
                todo.append((i, BatchItem(body, st.rkeys.idempotency(token.id, item.idempotency_key),
                                          fingerprint(body))))
        # one round trip for every job that passed its checks
        written = await create_jobs(st.redis, st.sync_redis, st.rkeys, st.settings, [b for _i, b in todo], token.name)
        for (i, done_item), out in zip(todo, written, strict=True):
            if isinstance(out, Replay):
                results[i] = _replayed(i, out.raw, done_item.fp, path)
            else:
                results[i] = _Result(index=i, status=202, job=msgspec.Raw(_enc.encode(out)))
        kept = [r for r in results if r is not None and r.status == 202]
        if kept:
            try:
                await st.durability.confirm()  # level replica: one WAIT for the whole batch
            except Unconfirmed as exc:
                for r in kept:  # each job's own 503, naming it: written, queued, not confirmed
                    jid = _id_dec.decode(r.job or b"{}").id
                    problem = Problem(type="https://superfed.dev/problems/503", title="Service unavailable",
                                      status=503, detail=unconfirmed_detail(exc, [jid], True), instance=path)
                    results[r.index] = _Result(index=r.index, status=503, problem=problem, replayed=r.replayed)
        done = [r for r in results if r is not None]
        accepted = sum(1 for r in done if r.status == 202)
        body_bytes: Any = _enc.encode(_Answer(accepted=accepted, refused=n - accepted, results=done))
        return Response(body_bytes, status_code=200, media_type="application/json")
