"""``superfed worker``: an RQ worker with superfed's runtime, plus the periodic schedule.

The schedule lives in Redis, not in any one process: every worker runs a small ticker that
tries ``SET key NX PX interval`` per site and task; whoever wins enqueues that period's
health check or poll.  Workers can come and go (or be killed) and the schedule goes on.

Reliability (DESIGN.md, "Reliability contracts"):
* RQ's ``SimpleWorker`` sends no heartbeat while a job runs, so a killed worker's job would
  look alive for ``job_timeout + 60`` s. ``BrokerWorker`` beats every ``abandoned_after / 3``
  seconds from a thread while a job runs and gives each job a heartbeat window of
  ``abandoned_after``; maintenance every ``maintenance_interval`` then finds a dead worker's
  job within ``abandoned_after + maintenance_interval`` and retries it (AbandonedJobError).
* Retries with a delay wait in RQ's ScheduledJobRegistry. RQ's own scheduler holds a lock for
  61 s, so a killed worker that held it would stall every retry for a minute: the ticker moves
  due jobs instead (any worker, one at a time, under a short lock).
* RQ's work loop quits on any unexpected error (a Redis restart, say); ``run`` starts it again
  once Redis answers, so a worker recovers on its own."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from rq import SimpleWorker
from rq.exceptions import NoSuchJobError, StopRequested
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.registry import ScheduledJobRegistry

from broker import queues
from broker.bootstrap import seed
from broker.config import Settings
from broker.store.connect import sync_client
from broker.tasks.runtime import Runtime, install

log = logging.getLogger("superfed.worker")
SWEEP_EVERY = 10.0  # seconds between checks for NEW jobs whose submission was lost
SWEEP_GRACE = 30.0  # a NEW job older than this with no RQ job is re-enqueued
PROMOTE_EVERY = 0.5  # seconds between moves of due retries from the scheduled registries


class BrokerWorker(SimpleWorker):
    """A SimpleWorker that keeps a running job's heartbeat fresh (see the module's notes)."""

    abandoned_after = 30

    def get_heartbeat_ttl(self, job: RQJob) -> int:
        return int(self.abandoned_after)

    def execute_job(self, job: RQJob, queue: Any) -> None:
        why = queues.refusal(job)
        if why is not None:  # a forged or foreign entry: never imported, never run
            log.error("refused RQ job %s from %s: %s", job.id, queue.name, why)
            with self.connection.pipeline() as p:
                job.set_status(JobStatus.FAILED, pipeline=p)
                queue.failed_job_registry.add(job, ttl=job.failure_ttl, exc_string=f"refused: {why}", pipeline=p)
                p.execute()
            return
        done = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job, done), name="superfed-heartbeat", daemon=True)
        beat.start()
        try:
            super().execute_job(job, queue)
        finally:
            done.set()
            beat.join(5)

    def _beat(self, job: RQJob, done: threading.Event) -> None:
        while not done.wait(max(1.0, self.abandoned_after / 3)):
            try:
                self.maintain_heartbeats(job)
            except Exception as exc:  # Redis away: the next beat tries again
                log.warning("heartbeat for %s: %s", job.id, exc)


class Ticker(threading.Thread):
    def __init__(self, rt: Runtime, conn: Any, stop: threading.Event):
        super().__init__(name="superfed-ticker", daemon=True)
        self.rt = rt
        self.conn = conn
        self.stop = stop

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                self.tick()
            except Exception as exc:  # Redis away, a bad record: log, keep ticking
                log.warning("ticker: %s", exc)
                self.stop.wait(1.0)

    def tick(self) -> None:
        k = self.rt.keys
        sites = self.rt.call(self.rt.sites.all)
        for stored in sites:
            s = stored.config
            if self.conn.set(k.tick("health", s.name), "1", nx=True, px=int(s.health_interval * 1000)):
                self.enqueue_once(queues.HEALTH, queues.HEALTH_FN, s.name, timeout=60)
            if self.conn.hlen(k.active(s.name)) and self.conn.set(
                k.tick("poll", s.name), "1", nx=True, px=int(s.poll_interval * 1000)
            ):
                self.enqueue_once(queues.POLL, queues.POLL_FN, s.name, timeout=120)
        if self.conn.set(k.tick("sweep", "all"), "1", nx=True, px=int(SWEEP_EVERY * 1000)):
            self.sweep()
        if self.conn.set(k.tick("promote", "all"), "1", nx=True, px=int(PROMOTE_EVERY * 1000)):
            self.promote()

    def enqueue_once(self, queue: str, fn: str, site: str, *, timeout: int) -> None:
        """At most one health check (or poll) per site waits or runs at a time: against a slow
        facility, checks that take longer than their interval would otherwise pile up ahead
        of the submissions (the health queue comes first) and starve them."""
        job_id = f"{queue.removeprefix('superfed-')}-{site}"
        try:
            status = RQJob.fetch(job_id, connection=self.conn, serializer=queues.SERIALIZER).get_status()
        except NoSuchJobError:
            status = None
        if status is not None and status.value in ("queued", "started", "scheduled", "deferred"):
            return
        queues.queue(self.conn, queue).enqueue_call(
            fn, args=(site,), job_id=job_id, timeout=timeout, result_ttl=0, failure_ttl=300
        )

    def promote(self) -> None:
        """Enqueue retries whose delay is over (what RQ's scheduler does, without its 61 s lock).
        ZREM decides who moves a job, so two movers never enqueue it twice."""
        now = int(time.time())
        for name in queues.ALL_QUEUES:
            q = queues.queue(self.conn, name)
            reg = ScheduledJobRegistry(queue=q)
            for job_id in reg.get_jobs_to_schedule(now, chunk_size=500):
                if not self.conn.zrem(reg.key, job_id):
                    continue  # another worker took it
                try:
                    job = RQJob.fetch(job_id, connection=self.conn, serializer=queues.SERIALIZER)
                except Exception:
                    continue  # the job expired meanwhile; the sweeper covers submissions
                q._enqueue_job(job, at_front=job.should_enqueue_at_front())

    def sweep(self) -> None:
        """A 202 means the job will be worked on: re-enqueue NEW jobs whose RQ job is gone."""
        k = self.rt.keys
        cutoff_us = int((time.time() - SWEEP_GRACE) * 1_000_000)
        for raw in self.conn.zrangebyscore(k.jobs_by_state("NEW"), "-inf", cutoff_us, start=0, num=500):
            job_id = raw.decode() if isinstance(raw, bytes) else raw
            status = None
            try:
                rq_job = RQJob.fetch(f"submit-{job_id}", connection=self.conn, serializer=queues.SERIALIZER)
                status = rq_job.get_status()
            except Exception:
                status = None
            gone = status is None or status.value in ("finished", "failed", "stopped", "canceled")
            suspect = False
            if not gone and not self._held(f"submit-{job_id}", status.value):  # type: ignore[union-attr]
                suspect = True
                # its status says waiting or running, yet no queue or registry holds it (a
                # Redis crash kept the job's hash but not the list move): gone too, if a
                # second sweep SWEEP_EVERY later still finds it nowhere
                first = self.conn.hsetnx(k.tick("sweep", "suspects"), job_id, repr(time.time()))
                gone = not first
            if gone:
                log.info("sweeper: re-enqueueing the submission of %s (rq status %s)", job_id, status)
                self.conn.hdel(k.tick("sweep", "suspects"), job_id)
                queues.enqueue_submit(
                    self.conn,
                    job_id,
                    retries=self.rt.settings.worker.submit_retries,
                    timeout=self.rt.settings.worker.job_timeout,
                )
            elif not suspect:
                self.conn.hdel(k.tick("sweep", "suspects"), job_id)

    def _held(self, rq_id: str, status: str) -> bool:
        """Whether RQ really holds the job where its status says."""
        q = queues.queue(self.conn, queues.SUBMIT)
        if status == "queued":
            return (
                self.conn.lpos(q.key, rq_id) is not None or self.conn.lpos(q.intermediate_queue_key, rq_id) is not None
            )
        if status == "started":
            return rq_id in q.started_job_registry.get_job_ids()
        if status == "scheduled":
            return self.conn.zscore(q.scheduled_job_registry.key, rq_id) is not None
        return True  # deferred and anything newer: leave it to RQ


def run(settings: Settings, *, burst: bool = False, name: str | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per facility request is noise
    rt = Runtime(settings)
    install(rt)
    rt.call(seed, rt.redis, settings)
    conn = sync_client(settings.redis_url)
    stop = threading.Event()
    ticker = Ticker(rt, conn, stop)
    ticker.start()
    w = settings.worker
    BrokerWorker.abandoned_after = w.abandoned_after
    restarts = 0
    try:
        while True:
            worker = BrokerWorker(
                [queues.queue(conn, q) for q in queues.ALL_QUEUES],
                connection=conn,
                name=name if restarts == 0 or name is None else f"{name}.{restarts}",
                maintenance_interval=w.maintenance_interval,
                job_monitoring_interval=max(1, w.abandoned_after // 3),
                default_result_ttl=300,
                serializer=queues.SERIALIZER,
            )
            try:
                worker.work(burst=burst, with_scheduler=False, logging_level="WARNING")
            except (redis.ConnectionError, redis.TimeoutError) as exc:  # e.g. at birth, Redis away
                log.warning("worker: Redis unavailable (%s)", exc)
            if burst or _stopping(worker):
                break
            # RQ's loop quit on an error (Redis restarted, most likely): start over once Redis answers
            restarts += 1
            log.warning("worker: RQ's loop stopped unexpectedly; restarting it when Redis answers")
            if not _wait_for_redis(conn, worker):
                break
    finally:
        stop.set()
        rt.close()
    return 0


def _stopping(worker: BrokerWorker) -> bool:
    # RQ records a SIGTERM/SIGINT here before anything else (``request_stop``)
    return worker._stop_requested or worker._shutdown_requested_date is not None


def _wait_for_redis(conn: Any, worker: BrokerWorker) -> bool:
    """True once Redis answers; False if a stop was requested meanwhile."""
    delay = 0.2
    try:
        while not _stopping(worker):
            try:
                conn.ping()
                return True
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
    except StopRequested:  # RQ's signal handler, still installed, raises it when idle
        pass
    return False
