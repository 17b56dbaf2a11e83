"""The Python SDK: the broker's API as typed calls, sync (``Client``) and async (``AsyncClient``).

Bodies are the msgspec structs the API itself encodes (``broker.schemas``, ``broker.api.*``), so
a field the API adds or renames shows up here as a type error, not a silent ``KeyError``.

Retries: 429 and 503 (the API's rate limit and Redis being away) and connection errors are
retried, waiting what ``Retry-After`` says (capped) or a doubling back-off. A submission carries an
``Idempotency-Key`` made once per job, before the first try, so a POST retried after its answer
was lost replays the first answer instead of making a second job (docs/API.md, Jobs). A 409 on
such a POST (the first try still being handled) is retried the same way.

Every failure is one exception, :class:`ApiError`, carrying the RFC 9457 problem the broker sent
(``status``, ``title``, ``detail``, ``errors``); a broker that cannot be reached at all reads
``status`` 0.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
import msgspec

from adapters.types import FileEntry
from broker.api.admin import AuditPage, TokenCreated, TokenView
from broker.api.batch import JobBatchAnswer
from broker.api.files import ProjectUsage
from broker.api.problems import FieldError, Problem
from broker.api.status import SiteStatus, SiteView, StatusReport
from broker.schemas import MAX_BATCH, CancelResult, Job, JobBatch, JobBatchItem, JobCreate, JobPage, UsageReport
from broker.states import FINAL

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "FieldError",
    "HealthEvent",
    "Problem",
    "RetryPolicy",
    "base_url",
]

T = TypeVar("T")

API = "/api/v1"


class HealthEvent(msgspec.Struct):
    """One ``event: health`` of ``GET /api/v1/status/events`` as streamed (``at`` in ISO 8601;
    the broker's internal ``broker.health.HealthEvent`` keeps epoch seconds)."""

    site: str
    component: str | None
    state: str
    previous: str | None
    at: str
    detail: str = ""


class ApiError(Exception):
    """A request the broker refused or could not answer, with its RFC 9457 problem."""

    def __init__(self, problem: Problem, retry_after: float | None = None):
        self.problem = problem
        self.retry_after = retry_after
        super().__init__(f"HTTP {problem.status}: {problem.detail or problem.title}" if problem.status
                         else problem.detail)

    @property
    def status(self) -> int:
        return self.problem.status

    @property
    def title(self) -> str:
        return self.problem.title

    @property
    def detail(self) -> str:
        return self.problem.detail

    @property
    def errors(self) -> list[FieldError]:
        return self.problem.errors


ClientError = ApiError  # the name the CLI used before the SDK; kept for scripts that caught it


def base_url(url: str) -> str:
    """The broker's root URL. The demo's banner shows the API as ``.../api/v1``; people paste
    that into SUPERFED_URL, so a trailing API prefix is dropped rather than doubled."""
    url = url.rstrip("/")
    return url.removesuffix(API)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry what may succeed later (429, 503, connection errors)."""

    attempts: int = 5  # tries in all, the first included
    backoff: float = 0.5  # seconds before the second try, doubling after
    max_delay: float = 30.0  # a longer Retry-After is cut to this (a CLI should not hang for an hour)
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 503}))

    def delay(self, attempt: int, retry_after: float | None) -> float:
        wait = retry_after if retry_after is not None else self.backoff * 2**attempt
        return max(0.0, min(wait, self.max_delay))


def _retry_after(r: httpx.Response) -> float | None:
    raw = r.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:  # the HTTP-date form
        return parsedate_to_datetime(raw).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


_problem_dec = msgspec.json.Decoder(Problem)


def _problem(r: httpx.Response) -> ApiError:
    try:
        p = _problem_dec.decode(r.content)
    except msgspec.DecodeError:  # not the broker (a proxy's HTML page): say what came back
        p = Problem(type="about:blank", title=r.reason_phrase or "Error", status=r.status_code,
                    detail=r.text[:200].strip() or r.reason_phrase)
    return ApiError(p, _retry_after(r))


def _unreachable(url: str, exc: Exception) -> ApiError:
    return ApiError(Problem(type="about:blank", title="Unreachable", status=0,
                            detail=f"cannot reach {url}: {exc or type(exc).__name__}"))


@dataclass
class _Call:
    """One API request as data, so the sync and async clients share everything but the I/O."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: bytes | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # a 409 with Retry-After is worth retrying only on an idempotent submission
    retry_409: bool = False

    def kwargs(self) -> dict[str, Any]:
        headers = dict(self.headers)
        body = self.content
        if self.json is not None:
            body, headers["Content-Type"] = self.json, "application/json"
        params = {k: v for k, v in (self.params or {}).items() if v is not None}
        return {"params": params or None, "content": body, "headers": headers}

    def retriable(self, policy: RetryPolicy, status: int) -> bool:
        return status in policy.statuses or (self.retry_409 and status == 409)


def _decode(r: httpx.Response, typ: type[T]) -> T:
    return msgspec.json.decode(r.content, type=typ)


def _body(job: JobCreate | Mapping[str, Any]) -> bytes:
    return msgspec.json.encode(_job_create(job))


def _job_create(job: JobCreate | Mapping[str, Any]) -> JobCreate:
    # a mapping is checked against JobCreate here, so a typo fails before the network, as the
    # 422 the broker would send (the same one exception, the field named as the broker names it)
    if isinstance(job, JobCreate):
        return job
    try:
        return msgspec.convert(dict(job), JobCreate)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = text.rpartition(" - at `$.")[2].rstrip("`") if " - at `$." in text else "body"
        field_error = FieldError(field=where, message=text.partition(" - at ")[0], source="body")
        raise ApiError(Problem(type="about:blank", title="Validation failed", status=422,
                               detail=f"{text} (checked before sending)", errors=[field_error])) from None


def _submit_call(job: JobCreate | Mapping[str, Any], key: str | None) -> _Call:
    return _Call("POST", f"{API}/jobs", json=_body(job),
                 headers={"Idempotency-Key": key or str(uuid.uuid4())}, retry_409=True)


class _Batch:
    """``submit_many``'s jobs, sent as batches (``POST /api/v1/jobs/batch``, at most
    ``MAX_BATCH`` a request), each job with its own idempotency key: a job the broker answers
    409 (its key still being handled) or 503 (``[durability] level = "replica"``: written, not
    yet confirmed by replicas) is sent again in the next round, with the others such; the sync
    and async clients share this and differ only in the I/O."""

    def __init__(self, jobs: Iterable[JobCreate | Mapping[str, Any]], keys: Iterable[str] | None, size: int):
        todo = list(jobs)
        ks = list(keys) if keys is not None else [str(uuid.uuid4()) for _ in todo]
        if len(ks) != len(todo):
            raise ValueError("one idempotency key per job")
        if not 1 <= size <= MAX_BATCH:
            raise ValueError(f"batch_size: 1 to {MAX_BATCH}")
        self.size = size
        self.out: list[Job | ApiError | None] = [None] * len(todo)
        self.items: dict[int, JobBatchItem] = {}
        for i, (job, key) in enumerate(zip(todo, ks, strict=True)):
            try:
                c = _job_create(job)
            except ApiError as exc:  # refused before sending, as the broker would
                self.out[i] = exc
                continue
            self.items[i] = JobBatchItem(project=c.project, spec=c.spec, placement=c.placement, idempotency_key=key)
        self.pending = sorted(self.items)

    def calls(self) -> list[tuple[list[int], _Call]]:
        """This round's requests: the jobs not answered yet, ``size`` a request."""
        chunks = [self.pending[i:i + self.size] for i in range(0, len(self.pending), self.size)]
        return [(idx, _Call("POST", f"{API}/jobs/batch", json=_batch_enc.encode(
            JobBatch(jobs=[self.items[i] for i in idx])))) for idx in chunks]

    def take(self, idx: list[int], r: httpx.Response | ApiError) -> float | None:
        """A request's answer into ``out``; the jobs to send again stay pending. Returns a wait
        (seconds) when some should be sent again."""
        if isinstance(r, ApiError):  # the whole request failed (after the client's retries)
            for i in idx:
                self.out[i] = r
            return None
        answer = msgspec.json.decode(r.content, type=JobBatchAnswer)
        again: list[int] = []
        for res in answer.results:
            i = idx[res.index]
            if res.job is not None:
                self.out[i] = res.job
                continue
            self.out[i] = ApiError(res.problem or Problem(type="about:blank", title="Error", status=res.status,
                                                           detail="refused"))  # the last word, if no other comes
            if res.status in (409, 503):  # its key still being handled; not confirmed by replicas yet
                again.append(i)
        sent = set(idx)
        self.pending = [i for i in self.pending if i not in sent] + again
        self.pending.sort()
        return 1.0 if again else None

    def result(self) -> list[Job | ApiError]:
        return [x if x is not None else ApiError(Problem(
            type="about:blank", title="Conflict", status=409,
            detail="no answer but 409 or 503 for it after every retry")) for x in self.out]


_batch_enc = msgspec.json.Encoder()


def _jobs_params(project: str | None, state: str | None, site: str | None, limit: int | None,
                 cursor: str | None) -> dict[str, Any]:
    return {"project": project, "state": state, "site": site, "limit": limit, "cursor": cursor}


def _usage_params(project: str | None, site: str | None, start: str | None, end: str | None) -> dict[str, Any]:
    given = {"project": project, "site": site, "from": start, "to": end}
    return {k: v for k, v in given.items() if v is not None}


def _file_params(project: str, path: str) -> dict[str, Any]:
    return {"project": project, "path": path}


class _SSE:
    """Server-Sent Events, a line at a time: ``feed`` returns (event, data) when a blank line
    ends an event with data; comments (the broker's keep-alives) are skipped."""

    def __init__(self) -> None:
        self.event, self.data = "message", list[str]()

    def feed(self, line: str) -> tuple[str, str] | None:
        if not line:
            done = (self.event, "\n".join(self.data)) if self.data else None
            self.event, self.data = "message", []
            return done
        if not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self.event = value
            elif name == "data":
                self.data.append(value)
        return None


_event_dec = msgspec.json.Decoder(HealthEvent)


class _Base:
    def __init__(self, url: str, token: str, *, retry: RetryPolicy | None = None, timeout: float = 30.0,
                 poll_interval: float = 1.0):
        self.url = base_url(url)
        self.headers = {"Authorization": f"Bearer {token}", "User-Agent": "superfed-sdk"}
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.poll_interval = poll_interval


class Client(_Base):
    """The API, blocking. Use as a context manager, or call :meth:`close`."""

    def __init__(self, url: str, token: str, *, transport: httpx.BaseTransport | None = None, **kw: Any):
        super().__init__(url, token, **kw)
        self.http = httpx.Client(base_url=self.url, headers=self.headers, timeout=self.timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _send(self, call: _Call) -> httpx.Response:
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                r = self.http.request(call.method, call.path, **call.kwargs())
            except httpx.TransportError as exc:
                if last:
                    raise _unreachable(self.url, exc) from None
                time.sleep(self.retry.delay(attempt, None))
                continue
            if r.status_code < 400:
                return r
            err = _problem(r)
            if last or not call.retriable(self.retry, r.status_code):
                raise err
            time.sleep(self.retry.delay(attempt, err.retry_after))
        raise AssertionError("unreachable")  # the loop returns or raises on its last try

    # ---- jobs --------------------------------------------------------------------------------
    def submit(self, job: JobCreate | Mapping[str, Any], *, idempotency_key: str | None = None) -> Job:
        """Submit one job (202). The key (made here when not given) makes retries safe."""
        return _decode(self._send(_submit_call(job, idempotency_key)), Job)

    def submit_many(self, jobs: Iterable[JobCreate | Mapping[str, Any]], *, concurrency: int = 4,
                    keys: Iterable[str] | None = None, batch_size: int = MAX_BATCH) -> list[Job | ApiError]:
        """Submit many jobs, in order, ``batch_size`` a request (``POST /api/v1/jobs/batch``,
        ``concurrency`` requests at once); each job its own idempotency key, so a request
        retried after its answer was lost makes no second job. A refused job is its
        :class:`ApiError` in the list, so the others' ids are not lost."""
        batch = _Batch(jobs, keys, batch_size)
        for attempt in range(self.retry.attempts):
            calls = batch.calls()
            if not calls:
                break

            def one(call: _Call) -> httpx.Response | ApiError:
                try:
                    return self._send(call)
                except ApiError as exc:
                    return exc

            with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(calls)))) as pool:
                answers = list(pool.map(one, [c for _idx, c in calls]))
            waits = [batch.take(idx, a) for (idx, _c), a in zip(calls, answers, strict=True)]
            wait = max((w for w in waits if w is not None), default=None)
            if wait is not None and attempt < self.retry.attempts - 1:
                time.sleep(self.retry.delay(attempt, wait))
        return batch.result()

    def job(self, job_id: str) -> Job:
        return _decode(self._send(_Call("GET", f"{API}/jobs/{job_id}")), Job)

    def jobs(self, *, project: str | None = None, state: str | None = None, site: str | None = None,
             limit: int | None = None, cursor: str | None = None) -> JobPage:
        """One page, newest first; ``next_cursor`` continues it."""
        call = _Call("GET", f"{API}/jobs", params=_jobs_params(project, state, site, limit, cursor))
        return _decode(self._send(call), JobPage)

    def iter_jobs(self, *, project: str | None = None, state: str | None = None, site: str | None = None,
                  page_size: int | None = None) -> Iterator[Job]:
        """Every matching job, newest first, following the cursor page after page."""
        cursor: str | None = None
        while True:
            page = self.jobs(project=project, state=state, site=site, limit=page_size, cursor=cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> CancelResult:
        return _decode(self._send(_Call("DELETE", f"{API}/jobs/{job_id}")), CancelResult)

    def wait(self, job_id: str, *, timeout: float | None = None,
             on_change: Callable[[Job], None] | None = None) -> Job:
        """Poll until the job is final (COMPLETED, FAILED, CANCELED) and return it.
        ``on_change`` sees the job each time its state moves (a progress display).
        Raises TimeoutError when ``timeout`` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: str | None = None
        interval = self.poll_interval
        while True:
            job = self.job(job_id)
            if job.state != seen:
                seen, interval = job.state, self.poll_interval  # a move: look again soon
                if on_change:
                    on_change(job)
            if job.state in FINAL:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.state} after {timeout} s")
            pause = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            interval = min(interval * 1.5, 10.0)  # a long job is not polled every second for hours

    # ---- sites and health --------------------------------------------------------------------
    def status(self) -> StatusReport:
        return _decode(self._send(_Call("GET", f"{API}/status")), StatusReport)

    def site_status(self, site: str) -> SiteStatus:
        return _decode(self._send(_Call("GET", f"{API}/status/{site}")), SiteStatus)

    def sites(self) -> list[SiteView]:
        return _decode(self._send(_Call("GET", f"{API}/sites")), list[SiteView])

    def site(self, name: str) -> SiteView:
        return _decode(self._send(_Call("GET", f"{API}/sites/{name}")), SiteView)

    def projects(self) -> list[ProjectUsage]:
        """Each project the token may see, with its allocation and use at every site."""
        return _decode(self._send(_Call("GET", f"{API}/projects")), list[ProjectUsage])

    def usage(self, *, project: str | None = None, site: str | None = None, start: str | None = None,
              end: str | None = None) -> UsageReport:
        """Final jobs, node-hours and failures per site and project, of the jobs that ended in
        [start, end) (ISO 8601 times with a zone, or dates)."""
        return _decode(self._send(_Call("GET", f"{API}/usage", params=_usage_params(project, site, start, end))),
                       UsageReport)

    def drain_site(self, name: str) -> SiteView:
        return _decode(self._send(_Call("POST", f"{API}/sites/{name}/drain")), SiteView)

    def enable_site(self, name: str) -> SiteView:
        return _decode(self._send(_Call("POST", f"{API}/sites/{name}/enable")), SiteView)

    def events(self) -> Iterator[HealthEvent]:
        """Health changes as they happen (``GET /api/v1/status/events``), until the broker
        ends the stream (the token expired or was revoked) or the caller stops iterating."""
        with self.http.stream("GET", f"{API}/status/events", timeout=httpx.Timeout(self.timeout, read=None)) as r:
            if r.status_code >= 400:
                r.read()
                raise _problem(r)
            sse = _SSE()
            for line in r.iter_lines():
                got = sse.feed(line)
                if got and got[0] == "end":
                    return
                if got and got[0] == "health":
                    yield _event_dec.decode(got[1])

    # ---- files -------------------------------------------------------------------------------
    def list_files(self, site: str, path: str, *, project: str) -> list[FileEntry]:
        call = _Call("GET", f"{API}/sites/{site}/files", params=_file_params(project, path))
        return _decode(self._send(call), list[FileEntry])

    def read_file(self, site: str, path: str, *, project: str) -> bytes:
        call = _Call("GET", f"{API}/sites/{site}/files/content", params=_file_params(project, path))
        return self._send(call).content

    def write_file(self, site: str, path: str, data: bytes, *, project: str) -> None:
        self._send(_Call("PUT", f"{API}/sites/{site}/files/content", params=_file_params(project, path),
                         content=data, headers={"Content-Type": "application/octet-stream"}))

    # ---- admin -------------------------------------------------------------------------------
    def audit(self, *, limit: int | None = None, offset: int | None = None) -> AuditPage:
        call = _Call("GET", f"{API}/audit", params={"limit": limit, "offset": offset})
        return _decode(self._send(call), AuditPage)

    def create_token(self, name: str, *, role: str = "viewer", projects: list[str] | None = None,
                     expires_at: str | None = None) -> TokenCreated:
        body: dict[str, Any] = {"name": name, "role": role, "projects": projects or ["*"]}
        if expires_at:
            body["expires_at"] = expires_at
        return _decode(self._send(_Call("POST", f"{API}/tokens", json=msgspec.json.encode(body))), TokenCreated)

    def tokens(self) -> list[TokenView]:
        return _decode(self._send(_Call("GET", f"{API}/tokens")), list[TokenView])

    def revoke_token(self, token_id: str) -> None:
        self._send(_Call("DELETE", f"{API}/tokens/{token_id}"))


class AsyncClient(_Base):
    """The API for asyncio; the same calls as :class:`Client`, awaited."""

    def __init__(self, url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None, **kw: Any):
        super().__init__(url, token, **kw)
        self.http = httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=self.timeout,
                                      transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _send(self, call: _Call) -> httpx.Response:
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                r = await self.http.request(call.method, call.path, **call.kwargs())
            except httpx.TransportError as exc:
                if last:
                    raise _unreachable(self.url, exc) from None
                await asyncio.sleep(self.retry.delay(attempt, None))
                continue
            if r.status_code < 400:
                return r
            err = _problem(r)
            if last or not call.retriable(self.retry, r.status_code):
                raise err
            await asyncio.sleep(self.retry.delay(attempt, err.retry_after))
        raise AssertionError("unreachable")

    async def submit(self, job: JobCreate | Mapping[str, Any], *, idempotency_key: str | None = None) -> Job:
        return _decode(await self._send(_submit_call(job, idempotency_key)), Job)

    async def submit_many(self, jobs: Iterable[JobCreate | Mapping[str, Any]], *, concurrency: int = 4,
                          keys: Iterable[str] | None = None, batch_size: int = MAX_BATCH) -> list[Job | ApiError]:
        """As :meth:`Client.submit_many`."""
        batch = _Batch(jobs, keys, batch_size)
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(call: _Call) -> httpx.Response | ApiError:
            async with gate:
                try:
                    return await self._send(call)
                except ApiError as exc:
                    return exc

        for attempt in range(self.retry.attempts):
            calls = batch.calls()
            if not calls:
                break
            answers = await asyncio.gather(*(one(c) for _idx, c in calls))
            waits = [batch.take(idx, a) for (idx, _c), a in zip(calls, answers, strict=True)]
            wait = max((w for w in waits if w is not None), default=None)
            if wait is not None and attempt < self.retry.attempts - 1:
                await asyncio.sleep(self.retry.delay(attempt, wait))
        return batch.result()

    async def job(self, job_id: str) -> Job:
        return _decode(await self._send(_Call("GET", f"{API}/jobs/{job_id}")), Job)

    async def jobs(self, *, project: str | None = None, state: str | None = None, site: str | None = None,
                   limit: int | None = None, cursor: str | None = None) -> JobPage:
        call = _Call("GET", f"{API}/jobs", params=_jobs_params(project, state, site, limit, cursor))
        return _decode(await self._send(call), JobPage)

    async def iter_jobs(self, *, project: str | None = None, state: str | None = None, site: str | None = None,
                        page_size: int | None = None) -> AsyncIterator[Job]:
        cursor: str | None = None
        while True:
            page = await self.jobs(project=project, state=state, site=site, limit=page_size, cursor=cursor)
            for j in page.items:
                yield j
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def cancel(self, job_id: str) -> CancelResult:
        return _decode(await self._send(_Call("DELETE", f"{API}/jobs/{job_id}")), CancelResult)

    async def wait(self, job_id: str, *, timeout: float | None = None,
                   on_change: Callable[[Job], None] | None = None) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: str | None = None
        interval = self.poll_interval
        while True:
            job = await self.job(job_id)
            if job.state != seen:
                seen, interval = job.state, self.poll_interval
                if on_change:
                    on_change(job)
            if job.state in FINAL:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.state} after {timeout} s")
            pause = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(pause)
            interval = min(interval * 1.5, 10.0)

    async def status(self) -> StatusReport:
        return _decode(await self._send(_Call("GET", f"{API}/status")), StatusReport)

    async def site_status(self, site: str) -> SiteStatus:
        return _decode(await self._send(_Call("GET", f"{API}/status/{site}")), SiteStatus)

    async def sites(self) -> list[SiteView]:
        return _decode(await self._send(_Call("GET", f"{API}/sites")), list[SiteView])

    async def site(self, name: str) -> SiteView:
        return _decode(await self._send(_Call("GET", f"{API}/sites/{name}")), SiteView)

    async def projects(self) -> list[ProjectUsage]:
        return _decode(await self._send(_Call("GET", f"{API}/projects")), list[ProjectUsage])

    async def usage(self, *, project: str | None = None, site: str | None = None, start: str | None = None,
                    end: str | None = None) -> UsageReport:
        call = _Call("GET", f"{API}/usage", params=_usage_params(project, site, start, end))
        return _decode(await self._send(call), UsageReport)

    async def drain_site(self, name: str) -> SiteView:
        return _decode(await self._send(_Call("POST", f"{API}/sites/{name}/drain")), SiteView)

    async def enable_site(self, name: str) -> SiteView:
        return _decode(await self._send(_Call("POST", f"{API}/sites/{name}/enable")), SiteView)

    async def events(self) -> AsyncIterator[HealthEvent]:
        timeout = httpx.Timeout(self.timeout, read=None)  # the stream is quiet between changes
        async with self.http.stream("GET", f"{API}/status/events", timeout=timeout) as r:
            if r.status_code >= 400:
                await r.aread()
                raise _problem(r)
            sse = _SSE()
            async for line in r.aiter_lines():
                got = sse.feed(line)
                if got and got[0] == "end":
                    return
                if got and got[0] == "health":
                    yield _event_dec.decode(got[1])

    async def list_files(self, site: str, path: str, *, project: str) -> list[FileEntry]:
        call = _Call("GET", f"{API}/sites/{site}/files", params=_file_params(project, path))
        return _decode(await self._send(call), list[FileEntry])

    async def read_file(self, site: str, path: str, *, project: str) -> bytes:
        call = _Call("GET", f"{API}/sites/{site}/files/content", params=_file_params(project, path))
        return (await self._send(call)).content

    async def write_file(self, site: str, path: str, data: bytes, *, project: str) -> None:
        await self._send(_Call("PUT", f"{API}/sites/{site}/files/content", params=_file_params(project, path),
                               content=data, headers={"Content-Type": "application/octet-stream"}))

    async def audit(self, *, limit: int | None = None, offset: int | None = None) -> AuditPage:
        call = _Call("GET", f"{API}/audit", params={"limit": limit, "offset": offset})
        return _decode(await self._send(call), AuditPage)
