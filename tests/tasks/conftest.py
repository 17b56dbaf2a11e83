"""The worker's tasks (submit, poll, cancel, health, sweep) run at their async level against a
real private Redis and real IRI simulators on loopback; no RQ timing is involved.

Everything that knows how a task is invoked (the runtime the tasks take, the sweeper's entry
point) is in ``Tasks`` and the ``tasks`` fixture, so a refactor of the worker changes this file
only; the tests speak of behaviour: what Redis holds and what the facility holds."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis

from broker.config import Settings, validate
from broker.intake import create_job_sync
from broker.schemas import JobCreate
from broker.store.jobs import Inflight
from broker.store.keys import Keys
from broker.tasks import cancel, health, poll, submit
from broker.tasks.runtime import Runtime
from simulators.common.facility import SimSettings
from simulators.iri import create_app
from tests.support.servers import ThreadedServer

SIM_TOKEN = "iri-tasks-token"
READ_TIMEOUT = 3.0  # the sites' HTTP read timeout; a "slow" facility answers after this
SPEC: dict[str, Any] = {
    "name": "t",
    "executable": "/bin/bash",
    "arguments": ["-c", "sleep 1"],
    "resources": {"node_count": 1},
    "attributes": {"duration": 600, "custom_attributes": {"filesystems": "home"}},
}
LONG = {**SPEC, "arguments": ["-c", "sleep 100000"]}  # runs until cancelled


@dataclass
class Slow:
    """Makes the facility's next job submission outlast the client's read timeout.
    ``made``: the facility makes the job and answers too late (the duplicate risk);
    ``lost``: the request never reaches the facility's scheduler;
    ``late``: the request waits in the facility until ``release`` is set, long after the client
    gave up, and then makes the job (the late copy that duplicates a job placed elsewhere)."""

    mode: str | None = None
    hits: int = 0
    busy: bool = False  # every submission is refused with a 503 (nothing made; reads still work)
    release: threading.Event = field(default_factory=threading.Event)
    holding: int = 0  # ``late`` requests not yet through
    on_submit: Callable[[], None] | None = None  # called (once) as a slowed submission arrives


class SlowSubmit:
    def __init__(self, app: Any, slow: Slow):
        self.app = app
        self.slow = slow

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        mode = self.slow.mode
        submission = scope["type"] == "http" and scope["method"] == "POST" and "/compute/job/" in scope["path"]
        if submission and self.slow.busy:
            body = b'{"detail": "the scheduler is busy (test)"}'
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        if mode is None or not submission:
            await self.app(scope, receive, send)
            return
        self.slow.mode = None  # once
        self.slow.hits += 1
        hook, self.slow.on_submit = self.slow.on_submit, None
        if hook is not None:
            hook()
        if mode == "late":
            body = []  # read now: once the client has gone, the server hands out no more of it
            while True:
                msg = await receive()
                body.append(msg)
                if not msg.get("more_body"):
                    break

            async def replay() -> Any:
                return body.pop(0) if body else {"type": "http.disconnect"}

            async def drop(msg: Any) -> None:
                pass

            self.slow.holding += 1
            try:
                while not self.slow.release.is_set():  # the test lets it through
                    await asyncio.sleep(0.02)
                await self.app(scope, replay, drop)
            finally:
                self.slow.holding -= 1
            return
        if mode == "lost":
            await asyncio.sleep(READ_TIMEOUT + 2)
            await send({"type": "http.response.start", "status": 504, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        held: list[Any] = []

        async def hold(msg: Any) -> None:
            held.append(msg)

        await self.app(scope, receive, hold)  # the facility makes the job now
        await asyncio.sleep(READ_TIMEOUT + 2)  # and the answer arrives too late
        for msg in held:
            await send(msg)


@dataclass
class Facility:
    name: str
    url: str
    app: Any
    slow: Slow = field(default_factory=Slow)

    def control(self, what: str, body: dict[str, Any] | None = None) -> None:
        httpx.post(f"{self.url}/_sim/{what}", json=body or {}, timeout=10).raise_for_status()

    def jobs(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/_sim/jobs", timeout=10).json()["jobs"])

    def jobs_tagged(self, tag: str) -> list[dict[str, Any]]:
        return [j for j in self.jobs() if tag in (j["name"] or "")]


@pytest.fixture(scope="session")
def facilities() -> Iterator[dict[str, Facility]]:
    out: dict[str, Facility] = {}
    servers = []
    for name in ("alpha", "beta"):
        slow = Slow()
        # the broker-side tasks are under test, not ALCF's queue rules (tests/simulators/test_facility_rules.py)
        app = create_app(
            SimSettings(enforce_policy=False, systems=["polaris"], nodes=8, time_scale=0.01, static_tokens=[SIM_TOKEN])
        )
        srv = ThreadedServer(SlowSubmit(app, slow)).__enter__()
        servers.append(srv)
        out[name] = Facility(name, srv.url, app, slow)
    try:
        yield out
    finally:
        for srv in servers:
            srv.__exit__(None, None, None)


def tasks_settings(redis_url: str, facilities: dict[str, Facility], token_file: Path, **placement: Any) -> Settings:
    return validate({
        "redis_url": redis_url,
        "placement": {"max_attempts": 2, **placement},
        "sites": [
            {"name": f.name, "kind": "iri", "url": f.url, "systems": ["polaris"],
             "health_interval": 5.0, "poll_interval": 2.0,
             "http": {"retries": 0, "read_timeout": READ_TIMEOUT, "connect_timeout": 2.0},
             "auth": {"token_file": str(token_file)}}
            for f in facilities.values()
        ],
    })


class Tasks:
    """One worker's view: run a task to its end, create jobs as the API does, read Redis.

    The tasks run on an event loop of their own in a thread (as a worker's loop), so the tests
    stay synchronous and a task runs exactly as far as it would under a worker."""

    def __init__(self, settings: Settings, facilities: dict[str, Facility]):
        from broker.bootstrap import seed

        self.settings = settings
        self.sim = facilities
        self.keys = Keys(settings.namespace)
        self.r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        self.rq = redis.Redis.from_url(settings.redis_url)  # RQ wants bytes
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tasks-loop", daemon=True)
        self._thread.start()

        async def build() -> Runtime:
            return Runtime(settings)

        self.rt = self.call(build)
        self.call(seed, self.rt.redis, settings)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``await fn(*args)`` on the tasks' loop; its exception, if any, is raised here."""
        return asyncio.run_coroutine_threadsafe(fn(*args), self.loop).result(60)

    def close(self) -> None:
        try:
            self.call(self.rt.aclose)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.r.close()
            self.rq.close()

    # -- the tasks, each run to its end (an exception is what RQ would see)
    def _run(self, fn: Callable[..., Any], *args: Any) -> str:
        return str(self.call(fn, self.rt, *args))

    def submit(self, job_id: str) -> str:
        return self._run(submit.run, job_id)

    def poll(self, site: str) -> str:
        return self._run(poll.run, site)

    def cancel(self, job_id: str) -> str:
        return self._run(cancel.run, job_id)

    def check(self, site: str) -> str:
        return self._run(health.run, site)

    def sweep(self) -> None:
        """One round of the sweeper, as the worker that holds its lease runs it."""
        from broker.tasks import sweep

        self.call(sweep.run, self.rt, self.rq)

    # -- jobs, as the API accepts them
    def create(self, spec: dict[str, Any] | None = None, *, project: str = "m0001", **placement: Any) -> str:
        body = msgspec.convert({"project": project, "spec": spec or SPEC, **({"placement": placement} if placement
                                                                             else {})}, JobCreate)
        return create_job_sync(self.rq, self.keys, self.settings, body, "tester").id

    def advance(self, job_id: str, state: str, **fields: Any) -> int:
        """One state change through the store (what every task does): 1 moved, 0 refused."""

        async def go() -> int:
            return await self.rt.jobs.advance(job_id, state, fields=fields or None)

        return int(self.call(go))

    def age(self, job_id: str, seconds: float) -> None:
        """The job was accepted ``seconds`` ago (its record and its indexes say so)."""
        created = time.time() - seconds
        us = int(created * 1_000_000)
        h = self.r.hgetall(self.keys.job(job_id))
        self.r.hset(self.keys.job(job_id), mapping={"created": repr(created), "created_us": str(us)})
        for key in (self.keys.jobs_all, self.keys.jobs_by_project(h["project"]), self.keys.jobs_by_state(h["state"])):
            self.r.zadd(key, {job_id: us}, xx=True)

    def job(self, job_id: str) -> dict[str, Any]:
        h = self.r.hgetall(self.keys.job(job_id))
        for k in ("attempts", "history", "placement"):
            if h.get(k):
                h[k] = msgspec.json.decode(h[k]) if h[k] != "{}" else []
        return h

    def active(self, site: str) -> dict[str, str]:
        """job id -> native id of the broker's unfinished jobs at ``site`` (what a poll asks)."""
        return {jid: a.native_id for jid, a in self.call(self.rt.jobs.active, site).items()}

    # -- the "a try may be under way" mark (where it went, and since when)
    def inflight(self, job_id: str) -> str | None:
        """The site of an unsettled try, or None."""
        rec = self.call(self.rt.jobs.record, job_id)
        return rec.inflight.site if rec.inflight is not None else None

    def mark_inflight(self, job_id: str, site: str, *, age: float) -> None:
        """As a try sent ``age`` seconds ago (by a worker since killed) leaves it."""
        mark = Inflight(site=site, system="polaris", at=time.time() - age)
        self.r.hset(self.keys.job(job_id), "inflight", msgspec.json.encode(mark).decode())

    def age_inflight(self, job_id: str, age: float) -> None:
        """The unsettled try was sent ``age`` seconds ago (its timeouts have long passed)."""
        site = self.inflight(job_id)
        assert site is not None, f"{job_id} has no try under way"
        self.mark_inflight(job_id, site, age=age)

    def unrecord_answer(self, job_id: str, site: str) -> None:
        """The job as it stood after its try at ``site`` was sent and before the answer was
        written: NEW, no native id, the try's mark on."""
        self.r.hset(self.keys.job(job_id), mapping={"state": "NEW", "native_id": ""})
        self.mark_inflight(job_id, site, age=0)

    def request_cancel(self, job_id: str) -> None:
        """What DELETE /api/v1/jobs/{id} records before it enqueues the cancel."""
        self.r.hset(self.keys.job(job_id), "cancel_requested", "1")

    def watched(self, site: str) -> set[str]:
        """Jobs whose try at ``site`` was given up unconfirmed: watched there for a late copy."""
        return set(self.r.hkeys(self.keys.watched(site)))

    def assigned(self, site: str) -> set[str]:
        return set(self.r.hkeys(self.keys.assigned(site)))

    def in_state(self, state: str) -> set[str]:
        return set(self.r.zrange(self.keys.jobs_by_state(state), 0, -1))

    def poll_until(self, job_id: str, states: set[str], site: str, bound: float = 60.0) -> dict[str, Any]:
        """Poll the site until the job reaches one of ``states`` (a generous bound, no timing)."""
        deadline = time.monotonic() + bound
        while True:
            self.poll(site)
            h = self.job(job_id)
            if h["state"] in states:
                return h
            if time.monotonic() > deadline:
                raise AssertionError(f"{job_id} still {h['state']} after {bound} s of polls")
            time.sleep(0.05)


@pytest.fixture
def make_tasks(clean_redis: str, facilities: dict[str, Facility], tmp_path: Path) -> Iterator[Callable[..., Tasks]]:
    """``make_tasks(**placement_settings)``: a fresh worker view over fresh facilities."""
    for f in facilities.values():
        f.slow.release.set()  # a request an earlier test held goes through before the reset
        deadline = time.monotonic() + 30
        while f.slow.holding and time.monotonic() < deadline:
            time.sleep(0.02)
        f.slow.release.clear()
        f.control("reset")
        f.slow.mode, f.slow.hits, f.slow.busy, f.slow.on_submit = None, 0, False, None
    token_file = tmp_path / "iri.token"
    token_file.write_text(SIM_TOKEN)
    made: list[Tasks] = []

    def make(**placement: Any) -> Tasks:
        t = Tasks(tasks_settings(clean_redis, facilities, token_file, **placement), facilities)
        made.append(t)
        return t

    try:
        yield make
    finally:
        for t in made:
            t.close()


@pytest.fixture
def tasks(make_tasks: Callable[..., Tasks]) -> Tasks:
    return make_tasks()


@pytest.fixture
def healthy(tasks: Tasks) -> Tasks:
    """Both sites checked (fresh, compute up), so placement has somewhere to go."""
    for name in tasks.sim:
        assert tasks.check(name) == "up"
    return tasks
