"""``superfed worker``: one asyncio event loop that runs the broker's RQ jobs (submissions and
cancels) and its periodic work (health checks, polls, retry promotion, the sweeper, the
move of old final jobs to the history database, and the takeover of a dead worker's jobs).

Why one loop rather than RQ's worker plus a loop thread: every job is I/O against Redis and the
facilities, and the adapters' HTTP pools and token caches live on one loop. RQ's worker runs one
job at a time on its own thread; each job then crossed into the loop and back, and liveness
needed a heartbeat thread per job and a ticker thread. Here a job is a coroutine on the loop (up
to ``submit_concurrency`` at once). RQ is used through its public API only: ``Queue.get_job_ids``,
``Queue.remove`` and ``Job.fetch_many`` to take queued jobs several at a time (``Queue.dequeue_any``
to wait for one when none is queued), ``Job.prepare_for_execution``, ``Job.set_status``,
``Job.retry`` and the registries' ``add`` to settle them, ``Queue.enqueue_job`` to put them back.
That API is synchronous, so it runs in two threads, each call a batch: one takes jobs (waiting in
``BLPOP`` while the queues are empty), the other settles finished jobs and moves due retries. A job thus
crosses threads twice (taken, settled), batched with the others taken or ended at the same time;
the loop never waits on a Redis reply it could spend on other jobs (called from the loop
directly, RQ's round trips stalled it by ~10 ms per batch on a busy machine).

Liveness, on keys of the broker's own (RQ's heartbeats do not fit: a SimpleWorker sends none
during a job, and its started registry is only cleaned up by RQ's own maintenance):
* Each worker holds a lease ``lease:worker:<name>`` for ``abandoned_after`` seconds, renewed
  every third of that from the loop. When it cannot be renewed (Redis refuses the write, or the
  lease is someone else's) the worker logs an error and takes no more jobs until it holds it again.
* Each job a worker takes is recorded in the ``claims`` hash (RQ job id -> ``<name>/<token>``,
  the token being the value of the worker's lease, new for every start) in the same MULTI that
  takes it out of its queue (right after the BLPOP for one waited for), and removed when the job
  is settled. A worker whose lease is gone (or holds another token: a
  restart under the same name) is dead: the takeover
  task puts its claimed jobs back at the front of their queue (HDEL decides which worker moves
  each one). With the defaults that is within about 5 s of a kill.
* The claim is also a fence: ``begin_try`` marks a submission in flight only for the worker its
  claim names, so a worker that lost its lease (paused, cut off) and comes back cannot send a job
  another worker has taken over. A try that may have reached a facility is looked up there by its
  tag before anything else (broker/tasks/submit.py), so a job taken over is never sent twice.

Periodic work runs as tasks on the same loop, each under one lease ``lease:<task>:<site>`` with
one owner at a time, renewed by that owner: a health check and a poll per site (the next one an
interval after the last one ended), the sweeper (submissions lost between a 202 and a worker,
every ``maintenance_interval``), retry promotion (due jobs from RQ's ScheduledJobRegistry to their
queue) and the takeover (both every 0.5 s). A dead owner's leases run out and another worker
takes them over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, cast

import redis
from rq import Queue
from rq.defaults import DEFAULT_RESULT_TTL
from rq.exceptions import DequeueTimeout, NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus

from broker import logs, queues, tracing
from broker.bootstrap import seed
from broker.config import Settings
from broker.store import primary, redis_auth
from broker.store.connect import sync_client
from broker.store.keys import Keys
from broker.store.leases import Leases
from broker.store.sitecache import site_cache
from broker.tasks import archive, entry, health, poll, submit, sweep
from broker.tasks.runtime import Runtime

log = logging.getLogger("superfed.worker")

PROMOTE_EVERY = 0.5  # seconds between moves of due retries to their queue
TAKEOVER_EVERY = 0.5  # seconds between looks for a dead worker's claimed jobs
IDLE_WAIT = 1  # seconds one BLPOP waits for work (RQ takes whole seconds)

# KEYS: the claims hash. ARGV: 1 RQ job id, 2 this worker's identity. Withdraws a claim only
# while it is this worker's.
_UNCLAIM = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""

Periodic = tuple[float, Callable[[], Awaitable[Any]]]
Done = tuple[RQJob, Queue, BaseException | None]


class Worker:
    def __init__(self, settings: Settings, name: str | None = None):
        self.settings = settings
        self.cfg = settings.worker
        self.name = name or f"{socket.gethostname()}.{os.getpid()}"
        self.keys = Keys(settings.namespace)
        self.lease_ms = int(self.cfg.abandoned_after * 1000)
        self.token = secrets.token_hex(8)  # this start's: its lease's value, and part of its claims
        self.identity = f"{self.name}/{self.token}"
        self.conn = sync_client(settings.redis_url)  # RQ's API is synchronous and wants bytes
        self.queues = [queues.queue(self.conn, name) for name in queues.ALL_QUEUES]
        self.by_name = {q.name: q for q in self.queues}
        self.running: dict[str, asyncio.Task[None]] = {}
        self._limbo: list[tuple[Queue, str]] = []  # claimed, not started yet (Redis went away meanwhile)
        self._unclaim = self.conn.register_script(_UNCLAIM)
        self.done: list[Done] = []
        self.healthy = False  # holds its lease, so it may take jobs
        self.owned: dict[str, tuple[float, asyncio.Task[None]]] = {}  # periodic lease key -> (period, runner)
        self.mover: archive.Mover | None = None  # made at the first lease round when [history] is on
        # RQ's API is synchronous: its calls run in two threads, so the loop never waits on a
        # Redis reply it could spend on other jobs; one thread takes jobs (and may wait in
        # BLPOP), the other settles them and moves due retries
        self._waiter = ThreadPoolExecutor(1, thread_name_prefix="superfed-dequeue")
        self._rq_io = ThreadPoolExecutor(1, thread_name_prefix="superfed-settle")

    # -- the process ------------------------------------------------------------------
    async def main(self, *, burst: bool = False) -> int:
        self.rt = Runtime(self.settings)
        self.leases = Leases(self.rt.redis, self.token)
        self.stopping = asyncio.Event()
        self.wake = asyncio.Event()  # a slot came free, the lease came back, or a stop
        self.settle_wake = asyncio.Event()
        settler = asyncio.create_task(self._settler())
        self._keeper: asyncio.Task[None] | None = None
        try:
            await self._until_redis(seed, self.rt.redis, self.settings)
            await self._lease_round(periodic=not burst)
            if not burst:
                self._keeper = asyncio.create_task(self._keep_leases())
            await self._work(burst)
            if self.running:  # a warm stop: the jobs under way finish first
                await asyncio.wait(list(self.running.values()))
        finally:
            if self._keeper:
                self._keeper.cancel()
            for _period, runner in self.owned.values():
                runner.cancel()
            settler.cancel()
            # a round under way gives its jobs back to self.done when cancelled: wait for that,
            # or they would be left claimed by a worker that is gone
            with contextlib.suppress(BaseException):
                await settler
            with contextlib.suppress(Exception):
                await self._settle_now()
            with contextlib.suppress(Exception):
                # our leases go at once: a job still claimed (a cold stop) is taken over now
                await self.leases.release([self.keys.worker_lease(self.name), *self.owned])
            self._waiter.shutdown(wait=True)
            self._rq_io.shutdown(wait=True)
            await self.rt.aclose()
            self.conn.close()
        return 0

    def request_stop(self) -> None:
        """First SIGTERM/SIGINT: take no more jobs, finish the running ones. Second: abandon
        them now (their claims stay; the other workers take them over when the lease goes)."""
        if self.stopping.is_set():
            log.warning("worker %s: cold stop; %d jobs left to the other workers", self.name, len(self.running))
            for task in self.running.values():
                task.cancel()
        else:
            log.info("worker %s: stopping once its %d running jobs end", self.name, len(self.running))
        self.stopping.set()
        self.wake.set()

    async def _until_redis(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        delay = 0.2
        while True:
            try:
                return await fn(*args)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if self.stopping.is_set():
                    raise
                log.warning("worker %s: Redis unavailable (%s)", self.name, exc)
                await self._sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _sleep(self, seconds: float, event: asyncio.Event | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((event or self.stopping).wait(), seconds)

    # -- taking and running jobs ------------------------------------------------------
    async def _work(self, burst: bool) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.2
        while not self.stopping.is_set():
            free = self.cfg.submit_concurrency - len(self.running)
            if free <= 0 or not self.healthy:
                self.wake.clear()
                await self._sleep(1.0, self.wake)
                continue
            try:
                got = await loop.run_in_executor(self._waiter, partial(self._take, free, block=not burst))
                if not got and burst:
                    if not self.running:
                        return
                    self.wake.clear()
                    await self._sleep(0.1, self.wake)
                    continue
                delay = 0.2
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("worker %s: cannot take jobs: Redis unavailable (%s)", self.name, exc)
                await self._sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            for job, q in got:
                self.running[job.id] = asyncio.create_task(self._perform(job, q))

    def _take(self, n: int, *, block: bool) -> list[tuple[RQJob, Queue]]:
        """Up to ``n`` jobs, claimed for this worker (waiting in BLPOP for one only when none is
        queued, and only with ``block``). Jobs that are not the broker's own are refused and
        failed here."""
        taken = self._take_queued(n)  # (job, queue, already claimed)
        if not taken and block:
            first = self._dequeue_one()
            if first is not None:
                taken = [(*first, False)]
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):  # claim what we have
                    taken += self._take_queued(n - 1)
        if not taken:
            return []
        try:
            return self._start(taken)
        except (redis.ConnectionError, redis.TimeoutError):
            # claimed and not started: kept for the next call (a live worker's claim is never
            # taken over). One taken by BLPOP had no claim yet: the sweeper finds it
            self._limbo = [(q, job.id) for job, q, claimed in taken if claimed] + self._limbo
            raise

    def _start(self, taken: list[tuple[RQJob, Queue, bool]]) -> list[tuple[RQJob, Queue]]:
        """RQ's bookkeeping for jobs about to run (``prepare_for_execution``), the claims of
        those not claimed yet, and the refusal of foreign ones, in one pipeline."""
        accepted = []
        with self.conn.pipeline(transaction=False) as p:
            for job, q, claimed in taken:
                why = queues.refusal(job)
                if why is not None:  # forged or foreign: never imported, never run
                    log.error("worker %s: refused RQ job %s from %s: %s", self.name, job.id, q.name, why)
                    job.set_status(JobStatus.FAILED, pipeline=p)
                    q.failed_job_registry.add(job, ttl=job.failure_ttl, exc_string=f"refused: {why}", pipeline=p)
                    if claimed:
                        p.hdel(self.keys.claims, job.id)
                    continue
                if not claimed:
                    p.hset(self.keys.claims, job.id, self.identity)
                job.prepare_for_execution(self.name, p)
                accepted.append((job, q))
            p.execute()
        return accepted

    def _dequeue_one(self) -> tuple[RQJob, Queue] | None:
        """The next job of any queue (cancels first), waiting up to IDLE_WAIT for one: RQ's
        ``dequeue_any`` (BLPOP, then the job's hash). Not claimed yet."""
        while True:
            try:
                return Queue.dequeue_any(self.queues, IDLE_WAIT, connection=self.conn, serializer=queues.SERIALIZER)
            except DequeueTimeout:
                return None
            except (redis.ConnectionError, redis.TimeoutError):
                raise
            except Exception as exc:  # a hash RQ cannot even read: nothing to run or settle
                log.error("worker %s: refused RQ job %s: unreadable (%s)", self.name, getattr(exc, "job_id", "?"), exc)

    def _take_queued(self, n: int) -> list[tuple[RQJob, Queue, bool]]:
        """Up to ``n`` queued jobs (cancels first), taken out of their queue and claimed for
        this worker together: a handful of round trips for the lot, however many, where RQ's
        ``dequeue_any`` makes three per job.

        The ids at the head of each queue are read (``Queue.get_job_ids``), then each is
        removed from its queue (``Queue.remove``: LREM) and claimed (HSETNX) in one MULTI, so
        between two workers that read the same ids the first MULTI takes them and the second
        finds them gone. A claim that does not go with a removal is void: the job was already
        taken and settled by another worker (the claim is withdrawn), or it was a second queue
        entry of a job another worker holds (that worker's claim decides; the entry is dropped).
        Claimed jobs whose hashes could not be read yet are kept and started on the next call:
        a claim of a live worker is never taken over, so it must not be forgotten."""
        cands: list[tuple[Queue, str]] = []
        taken: list[tuple[RQJob, Queue, bool]] = []
        if self._limbo:
            # still ours? (this worker may have lost its lease meanwhile, and the jobs with it)
            owners = self.conn.hmget(self.keys.claims, [rq_id for _, rq_id in self._limbo])
            mine = self.identity.encode()
            cands = [c for c, owner in zip(self._limbo, owners, strict=True) if owner == mine]
            self._limbo = []
        else:
            for q in self.queues:
                if len(cands) < n:
                    cands += [(q, rq_id) for rq_id in q.get_job_ids(0, n - len(cands))]
            if not cands:
                return []
            with self.conn.pipeline(transaction=True) as p:
                for q, rq_id in cands:
                    q.remove(rq_id, pipeline=p)
                    p.hsetnx(self.keys.claims, rq_id, self.identity)
                replies = p.execute()
            won, void = [], []
            for (q, rq_id), removed, claimed in zip(cands, replies[0::2], replies[1::2], strict=True):
                if removed and claimed:
                    won.append((q, rq_id))
                elif claimed:
                    void.append(rq_id)
                elif removed:
                    log.warning("worker %s: dropped a second queue entry of %s (held by %s)", self.name, rq_id,
                                self.conn.hget(self.keys.claims, rq_id))
            for rq_id in void:
                self._unclaim(keys=[self.keys.claims], args=[rq_id, self.identity])
            cands = won
        try:
            jobs = self._fetch([rq_id for _, rq_id in cands])
        except (redis.ConnectionError, redis.TimeoutError):
            self._limbo = cands  # claimed: started on the next call
            raise
        gone = []
        for (q, rq_id), job in zip(cands, jobs, strict=True):
            if job is None:  # expired meanwhile, or unreadable: nothing to run or settle
                gone.append(rq_id)
            else:
                taken.append((job, q, True))
        if gone:
            self.conn.hdel(self.keys.claims, *gone)
        return taken

    def _fetch(self, rq_ids: list[str]) -> list[RQJob | None]:
        """RQ's ``Job.fetch_many`` (one round trip); one job at a time when a hash among them
        cannot be read, so that one alone is left out (and logged)."""
        if not rq_ids:
            return []
        try:
            return RQJob.fetch_many(rq_ids, connection=self.conn, serializer=queues.SERIALIZER)
        except (redis.ConnectionError, redis.TimeoutError):
            raise
        except Exception:
            pass
        out: list[RQJob | None] = []
        for rq_id in rq_ids:
            try:
                out.append(RQJob.fetch(rq_id, connection=self.conn, serializer=queues.SERIALIZER))
            except NoSuchJobError:
                out.append(None)
            except (redis.ConnectionError, redis.TimeoutError):
                raise
            except Exception as exc:
                log.error("worker %s: refused RQ job %s: unreadable (%s)", self.name, rq_id, exc)
                out.append(None)
        return out

    async def _perform(self, job: RQJob, q: Queue) -> None:
        fn = entry.TASKS[job.func_name or ""]  # refusal() vouched for the name
        error: BaseException | None = None
        logs.bind(job_id=job.args[0])  # this task's lines name the job (broker/logs.py)
        try:
            # a child of the API request that enqueued the job (a no-op when tracing is off)
            with tracing.job_span(job.func_name or "", job.meta, job.args[0]):
                async with asyncio.timeout(job.timeout or self.cfg.job_timeout):  # (wait_for: one more task a job)
                    result = await fn(self.rt, job.args[0], self.identity)
            log.info("%s: %s", job.args[0], result)  # what the worker did: one line a job it ran
        except asyncio.CancelledError:
            self.running.pop(job.id, None)
            raise  # a cold stop: the claim stays for the takeover
        except submit.TryLater as exc:
            error = exc
            log.info("%s: %s", job.id, exc)
        except Exception as exc:
            error = exc
            log.warning("%s failed: %s", job.id, "".join(traceback.format_exception_only(exc)).strip())
        self.running.pop(job.id, None)
        self.done.append((job, q, error))
        self.settle_wake.set()
        self.wake.set()

    async def _settler(self) -> None:
        while True:
            await self.settle_wake.wait()
            self.settle_wake.clear()
            try:
                await self._settle_now()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("worker %s: cannot settle finished jobs yet (%s)", self.name, exc)
                await self._sleep(1.0)
                self.settle_wake.set()

    async def _settle_now(self) -> None:
        """RQ's bookkeeping for finished jobs, in one pipeline: finished (kept ``result_ttl``),
        retried with the job's backoff, or failed; and their claims dropped."""
        done, self.done = self.done, []
        if not done:
            return
        try:
            loop = asyncio.get_running_loop()
            gave_up = await loop.run_in_executor(self._rq_io, self._settle_sync, done)
        except BaseException:
            self.done = done + self.done  # settled on the next round
            raise
        for job, error in gave_up:
            if job.func_name == queues.SUBMIT_FN:
                await submit.give_up(self.rt, job.args[0], error)

    def _settle_sync(self, done: list[Done]) -> list[tuple[RQJob, BaseException]]:
        gave_up: list[tuple[RQJob, BaseException]] = []
        with self.conn.pipeline(transaction=False) as p:
            for job, q, error in done:
                p.hdel(self.keys.claims, job.id)
                if error is None:
                    ttl = job.get_result_ttl(DEFAULT_RESULT_TTL)
                    job.set_status(JobStatus.FINISHED, pipeline=p)
                    if ttl:
                        q.finished_job_registry.add(job, ttl, pipeline=p)
                    job.cleanup(ttl, pipeline=p)
                elif job.should_retry:
                    job.retry(q, p)
                else:
                    job.set_status(JobStatus.FAILED, pipeline=p)
                    exc_string = "".join(traceback.format_exception(error))
                    q.failed_job_registry.add(job, ttl=job.failure_ttl, exc_string=exc_string, pipeline=p)
                    gave_up.append((job, error))
            p.execute()
        return gave_up

    # -- leases ----------------------------------------------------------------------------
    async def _keep_leases(self) -> None:
        # renewed until main() cancels this, through a warm stop too: a worker finishing its
        # jobs must keep its lease, or the others take those jobs over (and ask the facility
        # for them a second time); its periodic tasks are handed over at the stop
        while True:
            if self.stopping.is_set():
                await asyncio.sleep(self.lease_ms / 3000)
            else:
                await self._sleep(self.lease_ms / 3000)  # a stop wakes it: periodic tasks go at once
            await self._lease_round(periodic=not self.stopping.is_set())

    async def _lease_round(self, *, periodic: bool) -> None:
        """Renew (or take back) this worker's lease; then take, keep or give up periodic tasks."""
        mine = self.keys.worker_lease(self.name)
        try:
            ok = (await self.leases.acquire([mine], self.lease_ms))[0]
            why = "it is held by another process (a second worker with this name?)"
        except Exception as exc:  # Redis away or refusing the write: the lease may be running out
            ok, why = False, f"it cannot be written: {exc}"
        if not ok:
            log.error("worker %s: no lease (%s); taking no jobs until it holds one again", self.name, why)
        elif not self.healthy:
            log.info("worker %s: lease held; taking jobs", self.name)
        self.healthy = ok
        self.wake.set()
        if not ok or not periodic:
            self._drop_periodic(list(self.owned))
            return
        try:
            wanted = await self._wanted()
            held = await self.leases.acquire(list(wanted), self.lease_ms)
        except Exception as exc:
            log.error("worker %s: periodic leases cannot be renewed (%s); dropping them", self.name, exc)
            self._drop_periodic(list(self.owned))
            return
        self._drop_periodic([k for k in self.owned if k not in wanted])
        for (key, (period, fn)), got in zip(wanted.items(), held, strict=True):
            current = self.owned.get(key)
            if not got or (current and current[0] != period):
                self._drop_periodic([key])
            if got and key not in self.owned:
                self.owned[key] = (period, asyncio.create_task(self._periodic(key, period, fn)))

    def _drop_periodic(self, keys: list[str]) -> None:
        for key in keys:
            found = self.owned.pop(key, None)
            if found:
                found[1].cancel()

    async def _wanted(self) -> dict[str, Periodic]:
        k = self.keys
        out: dict[str, Periodic] = {
            k.lease("takeover", "all"): (TAKEOVER_EVERY, self._takeover),
            k.lease("promote", "all"): (PROMOTE_EVERY, self._promote),
            k.lease("sweep", "all"): (float(self.cfg.maintenance_interval), partial(sweep.run, self.rt, self.conn)),
        }
        if self.rt.history is not None:  # final jobs past their retention, to the history database
            self.mover = self.mover or archive.Mover(self.rt, self.rt.history)
            out[k.lease("archive", "all")] = (self.settings.history.interval_s, self.mover.run)
        for stored in await site_cache(self.rt.sites).all():
            s = stored.config
            out[k.lease("health", s.name)] = (s.health_interval, partial(health.run, self.rt, s.name))
            out[k.lease("poll", s.name)] = (s.poll_interval, partial(poll.run, self.rt, s.name))
        return out

    async def _periodic(self, key: str, period: float, fn: Callable[[], Awaitable[Any]]) -> None:
        """One periodic task while this worker holds its lease: the next run one period after
        the last one ended (a slow facility never gets checks back to back)."""
        while True:
            try:
                await fn()
            except Exception as exc:  # a facility or Redis error: the next period tries again
                log.warning("%s: %s", key, exc)
            await asyncio.sleep(period)

    # -- periodic work of the whole broker --------------------------------------------
    async def _takeover(self) -> None:
        """Put a dead worker's claimed jobs back at the front of their queues."""
        claims = cast(dict[str, str], await self.rt.redis.hgetall(self.keys.claims))  # decode_responses=True
        if not claims:
            return
        owners = sorted(set(claims.values()))  # "<name>/<token>"
        async with self.rt.redis.pipeline(transaction=False) as p:
            for owner in owners:
                p.get(self.keys.worker_lease(owner.rpartition("/")[0]))
            tokens = await p.execute()
        dead = {o for o, t in zip(owners, tokens, strict=True) if t != o.rpartition("/")[2]}
        orphans = [rq_id for rq_id, w in claims.items() if w in dead]
        if not orphans:
            return
        if time.time() - await primary.since(self.rt.redis, self.keys) < self.lease_ms / 1000 + 2:
            # Redis itself restarted, or a replica took over, moments ago: a lease that ran out
            # while nothing answered says nothing of its owner, which renews it within a second
            return
        async with self.rt.redis.pipeline(transaction=False) as p:
            for rq_id in orphans:
                p.hdel(self.keys.claims, rq_id)
            won = await p.execute()
        mine = [rq_id for rq_id, w in zip(orphans, won, strict=True) if w]
        for rq_id in mine:
            try:
                job = RQJob.fetch(rq_id, connection=self.conn, serializer=queues.SERIALIZER)
            except NoSuchJobError:
                continue  # expired meanwhile; the sweeper covers submissions
            q = self.by_name.get(job.origin)
            if q is None:
                continue
            q.enqueue_job(job, at_front=True)
            log.warning("worker %s: took over %s from %s (its lease ran out)", self.name, rq_id, claims[rq_id])

    async def _promote(self) -> None:
        """Enqueue retries whose delay is over (RQ's scheduler does this under a 61 s lock a
        killed worker would hold). ZREM decides who moves a job, so none is enqueued twice."""
        await asyncio.get_running_loop().run_in_executor(self._rq_io, self._promote_sync)

    def _promote_sync(self) -> None:
        now = int(time.time())
        for q in self.queues:
            reg = q.scheduled_job_registry
            for rq_id in reg.get_jobs_to_schedule(now, chunk_size=500):
                if not reg.remove(rq_id):
                    continue  # moved by another worker
                try:
                    job = RQJob.fetch(rq_id, connection=self.conn, serializer=queues.SERIALIZER)
                except NoSuchJobError:
                    continue
                q.enqueue_job(job, at_front=job.should_enqueue_at_front())


def run(settings: Settings, *, burst: bool = False, name: str | None = None, log_format: str = "json") -> int:
    logs.setup(log_format)
    # refuse to work over a Redis anyone can write to (unless the config allows it)
    redis_auth.check(settings.redis_url, settings.allow_unauthenticated_redis, "superfed worker")
    tracing.setup(settings, "worker")
    worker = Worker(settings, name)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(sig, worker.request_stop)
        return await worker.main(burst=burst)

    return asyncio.run(main())
